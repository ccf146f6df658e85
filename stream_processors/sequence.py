"""Sequence numbers that never repeat and never go backwards, across workers and restarts.

A record's ``seq`` is ``max(previous + 1, wall ms * 1000)``: it increases by at least one
per record, and a worker that restarts, or takes a runner or a race over from another,
continues above what was published before it without reading anything back (the wall
clocks of the workers agree far better than the 1,000 numbers per millisecond that
separate them). Consumers de-duplicate per key with it (docs/streams.md). The values
stay below 2**53, so JavaScript reads them exactly.
"""

from __future__ import annotations


class Sequencer:
    """Hands out sequence numbers (see the module docstring)."""

    def __init__(self, last: int = 0) -> None:
        self.last = last

    def next(self, wall_ms: int) -> int:
        self.last = max(self.last + 1, wall_ms * 1000)
        return self.last
