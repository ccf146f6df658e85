"""Latency histograms with logarithmic buckets, cheap to fill and to merge across processes.

A value v (ms, >= 0) falls in bucket ``int(log1p(v) * PER_E)``: about 1% wide above a few
ms and 0.01 ms wide near zero, from 0 to hours in under 1,500 buckets. Workers send the
sparse bucket counts of each second to the parent, which merges them into per-second and
whole-run histograms and reads percentiles off them. Negative values (a frame stamped by a
clock ahead of the receiver's) count as 0 and are counted apart in ``negative``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

PER_E = 100.0  # buckets per factor e of (1 + v): ~1% resolution


def bucket(value_ms: float) -> int:
    return int(math.log1p(value_ms) * PER_E) if value_ms > 0 else 0


def bucket_value(index: int) -> float:
    """The middle of bucket ``index`` (ms)."""
    return math.expm1((index + 0.5) / PER_E)


@dataclass(slots=True)
class Histogram:
    """Counts per log bucket; ``add`` a value, ``merge`` another, read ``percentile``."""

    counts: dict[int, int] = field(default_factory=dict)
    n: int = 0
    negative: int = 0
    max_ms: float = 0.0

    def add(self, value_ms: float) -> None:
        if value_ms < 0:
            self.negative += 1
            value_ms = 0.0
        b = int(math.log1p(value_ms) * PER_E)
        counts = self.counts
        counts[b] = counts.get(b, 0) + 1
        self.n += 1
        if value_ms > self.max_ms:
            self.max_ms = value_ms

    def merge(self, other: Histogram) -> None:
        counts = self.counts
        for b, c in other.counts.items():
            counts[b] = counts.get(b, 0) + c
        self.n += other.n
        self.negative += other.negative
        self.max_ms = max(self.max_ms, other.max_ms)

    def percentile(self, q: float) -> float:
        """The value (ms) at quantile ``q`` in [0, 1]; NaN when empty.

        Raises ValueError for q outside [0, 1].
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        if self.n == 0:
            return math.nan
        rank = max(1, math.ceil(q * self.n))
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return min(bucket_value(b), self.max_ms)
        return self.max_ms

    def summary(self) -> dict[str, float]:
        """n, p50, p95, p99 and max (ms), for printing and JSON."""
        return {"n": self.n, "p50": self.percentile(0.5), "p95": self.percentile(0.95),
                "p99": self.percentile(0.99), "max": self.max_ms}

    def to_wire(self) -> tuple[dict[int, int], int, int, float]:
        return self.counts, self.n, self.negative, self.max_ms

    @classmethod
    def from_wire(cls, wire: tuple[dict[int, int], int, int, float]) -> Histogram:
        counts, n, negative, max_ms = wire
        return cls(dict(counts), n, negative, max_ms)
