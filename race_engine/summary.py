"""A runner's summary: what ranks and time gaps need, and nothing else.

The per-race board needs of each runner only its status, where and when it was last
seen on the course, its splits, and the time it reached each point behind it (for time
gaps). ``summarize`` takes those from a ``RunnerState``; a ``RunnerSummary`` answers the
same questions the board asks of a ``RunnerState`` (``current``, ``furthest``, ``split``,
``splits``, ``time_at``), so ``race_engine.board`` builds the same board from either.

The time-at-distance curve is the runner's progress envelope itself (one point per
observation, metres and epoch ms), so gaps from summaries equal gaps from the whole
state. Thinning it was measured and refused: GPS noise makes the envelope step, and a
curve thinned to one knot per 25-50 m was off by 10-20 s at the 99th percentile.
What keeps a summary small on the wire is that the curve only grows at its end: a
summary carries the curve from the first point that changed (``tail``), and a copy
applies it over what it has (``RunnerSummary.extend``).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from race_engine.model import Status
from race_engine.runner import Layout, RunnerState, Split, envelope_time_at, ordered_splits


@dataclass(slots=True)
class RunnerSummary:
    """What the board needs of one runner (see the module docstring)."""

    bib: str
    layout: Layout
    status: Status = Status.RUNNING
    reason: str = ""
    last_t: int | None = None  # latest fix time
    raw_splits: tuple[Split, ...] = ()  # each checkpoint's effective split, unclamped
    curve_m: array[float] = field(default_factory=lambda: array("d"))  # the envelope:
    curve_t: array[int] = field(default_factory=lambda: array("q"))  # metres, epoch ms

    def current(self) -> tuple[int, float] | None:
        if not self.curve_t:
            return None
        return self.curve_t[-1], self.curve_m[-1]

    @property
    def progress_m(self) -> float:
        return self.curve_m[-1] if self.curve_m else 0.0

    def split(self, checkpoint: str) -> Split | None:
        return next((s for s in self.raw_splits if s.checkpoint == checkpoint), None)

    def splits(self) -> list[Split]:
        return ordered_splits(list(self.raw_splits))

    def furthest(self) -> int:
        index = self.layout.index
        return max((index[s.checkpoint] for s in self.raw_splits), default=-1)

    def time_at(self, d: float) -> float | None:
        """Epoch ms at which the runner first reached ``d`` metres; None if not yet
        (as ``RunnerState.time_at``)."""
        return envelope_time_at(self.curve_m, self.curve_t, self.layout.start_ms, d)

    def extend(self, start: int, m: list[float], t: list[int]) -> bool:
        """Replace the curve from point ``start`` on with ``m`` and ``t``. False (and no
        change) when points before ``start`` are missing here.

        Raises:
            ValueError: ``m`` and ``t`` differ in length, or ``start`` is negative.
        """
        if len(m) != len(t) or start < 0:
            raise ValueError(f"a curve tail needs as many metres as times from a point "
                             f"index >= 0, got {len(m)}, {len(t)} from {start}")
        if start > len(self.curve_m):
            return False
        del self.curve_m[start:], self.curve_t[start:]
        self.curve_m.extend(m)
        self.curve_t.extend(t)
        return True


def summarize(r: RunnerState) -> RunnerSummary:
    """The summary of ``r`` now (a copy: later changes to ``r`` do not reach it)."""
    return RunnerSummary(r.bib, r.layout, r.status, r.reason, r.last_t, tuple(r.raw_splits()),
                         array("d", r.a_m), array("q", r.a_t))
