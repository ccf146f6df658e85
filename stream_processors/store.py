"""Runner states in a key-value table, in parts, sans-I/O.

A runner's track grows all race (a 4-hour race at one fix every 5 s is ~2,900 fixes,
~250 KB of JSON); writing it whole after every change made the table's changelog, not
the race, the processors' work. So a runner is stored as:

* a head under ``race:bib``: status, chip and manual splits, the latest fix, what the
  stage keeps beside the runner (its open alerts), the time ``bounds`` of its chunks,
  and the track since the last bound, rewritten when the runner changed;
* chunks under ``race:bib<SEP>i``: the track between ``bounds[i-1]`` and ``bounds[i]``,
  written when sealed and again only when a late fix lands in one.

A chunk is sealed when the head holds ``2 * chunk`` fixes; the newest ``chunk`` stay in
the head, so a late burst (a tracker flushing a coverage hole) usually rewrites only the
head. Writing costs O(chunk) per changed runner, whatever the length of the race.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from race_engine.runner import RunnerState

SEP = b"\x1f"  # between a runner's key and a chunk number: never in a race id or bib
CHUNK = 48


def chunk_key(key: bytes, i: int) -> bytes:
    return key + SEP + str(i).encode()


def is_chunk_key(key: bytes) -> bool:
    return SEP in key


@dataclass
class _Parts:
    bounds: list[int] = field(default_factory=list)
    dirty: set[int] = field(default_factory=set)  # chunks to rewrite
    all_dirty: bool = False


class RunnerStore:
    """Which parts of which runners to write, and how to read a runner back."""

    def __init__(self, chunk: int = CHUNK) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1 fix, got {chunk}")
        self.chunk = chunk
        self._parts: dict[bytes, _Parts] = {}

    def forget(self) -> None:
        """Drop all bookkeeping (after a rebalance, runners are read back when seen)."""
        self._parts.clear()

    # ------------------------------------------------------------------ write

    def mark(self, key: bytes, entries: Iterable[list[Any]]) -> None:
        """Note which chunks ``entries`` (a runner's changes, RunnerState.journal)
        changed."""
        p = self._parts.setdefault(key, _Parts())
        for e in entries:
            if e[0] in ("f", "u"):
                i = bisect_right(p.bounds, e[1])
                if i < len(p.bounds):
                    p.dirty.add(i)
            elif e[0] == "s":  # a split may move an observation anywhere in the track
                p.all_dirty = True

    def writes(self, key: bytes, r: RunnerState,
               extra: dict[str, Any] | None = None) -> list[tuple[bytes, bytes]]:
        """``(table key, JSON value)`` to write for runner ``r``, with ``extra`` fields in
        its head."""
        p = self._parts.setdefault(key, _Parts())
        since = p.bounds[-1] if p.bounds else -math.inf
        f_t = r.f_t
        in_head = len(f_t) - bisect_left(f_t, since)
        if in_head >= 2 * self.chunk:
            p.bounds.append(f_t[len(f_t) - self.chunk])
            p.dirty.add(len(p.bounds) - 1)
            since = p.bounds[-1]
        dirty = range(len(p.bounds)) if p.all_dirty else sorted(p.dirty)
        out = []
        for i in dirty:
            lo = p.bounds[i - 1] if i else -math.inf
            out.append((chunk_key(key, i), orjson.dumps(r.track_dict(lo, p.bounds[i]))))
        head = r.to_dict(since=since)
        head.update(extra or {}, bounds=p.bounds)
        out.append((key, orjson.dumps(head)))
        p.dirty.clear()
        p.all_dirty = False
        return out

    # ------------------------------------------------------------------- read

    def read(self, key: bytes, head: dict[str, Any] | None,
             get: Callable[[bytes], dict[str, Any] | None]) -> dict[str, Any] | None:
        """The snapshot (for RunnerState.from_dict, with the head's extra fields) of the
        runner stored under ``key``, from its head and ``get(chunk key)``; None when
        there is no head.

        Raises:
            ValueError: a malformed head, or a chunk it names is missing.
        """
        if head is None:
            self._parts[key] = _Parts()
            return None
        try:
            bounds = [int(b) for b in head["bounds"]]
            parts = []
            for i in range(len(bounds)):
                chunk = get(chunk_key(key, i))
                if chunk is None:
                    raise ValueError(f"chunk {i} of {len(bounds)} is missing")
                parts.append(chunk)
            parts.append(head)
            state = {k: v for k, v in head.items() if k != "bounds"}
            for part in ("fixes", "obs"):
                state[part] = {col: [x for c in parts for x in c[part][col]]
                               for col in head[part]}
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"stored runner {key!r} is malformed: {e}") from None
        self._parts[key] = _Parts(bounds=bounds)
        return state
