"""Realistic ``standings.v1`` records for the fan-out benchmark, from a simulated race.

A field is simulated on a race folder and fed to a ``RaceEngine`` up to ``at_min`` minutes
into the race; the board then is the snapshot. The next ``ticks`` ticks each feed the
fixes that arrived during the tick and make an update as the processors do (streams.md):
the rows of the runners the engine marked dirty, the whole order, the checkpoints whose
splits changed, the finishers when they changed. ``Stamper`` gives the records their
``seq``, ``base_seq`` and send time, and restamps ``last_fix_ms`` of the rows that got a
new fix with the send time, so a spectator's ``now - last_fix_ms`` is the end-to-end latency
from the moment the record is produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from race_engine.engine import RaceEngine
from race_engine.racefolder import load_race
from race_engine.simulate import SimOptions, simulate


@dataclass(frozen=True)
class StandingsFeed:
    """A snapshot record, then updates; ``fresh[i]`` are the bibs with a new fix in update i."""

    race: str
    snapshot: dict[str, Any]
    updates: list[dict[str, Any]]
    fresh: list[frozenset[str]]


def simulate_feed(race_dir: str | Path, runners: int = 500, *, seed: int = 1,
                  at_min: float = 90.0, tick_ms: int = 1000, ticks: int = 60) -> StandingsFeed:
    """Simulate ``runners`` on the race and cut ``ticks`` updates of ``tick_ms`` of race time.

    Raises ValueError (race_engine's) for an unusable race folder or runner count.
    """
    race = load_race(race_dir)
    sim = simulate(race, np.random.default_rng(seed), SimOptions(runners=runners))
    engine = RaceEngine(race)
    pings = sim.pings()
    pending = next(pings, None)
    now = int(sim.arrival.min()) + int(at_min * 60_000)

    def feed_until(t: int) -> None:
        nonlocal pending
        while pending is not None and pending[1] <= t:
            engine.on_fix(None, pending[0], pending[1])
            pending = next(pings, None)

    feed_until(now)
    engine.tick(now)
    engine.take_dirty()
    board = engine.board(now)
    snapshot = {"v": 1, "type": "snapshot", "race": race.id, "seq": 0, "generated_ms": now,
                "board": board}
    rows_before = {r["bib"]: r for r in board["runners"]}
    cps_before = {c["id"]: c for c in board["checkpoints"]}
    finishers_before = board["finishers"]
    updates, fresh = [], []
    for _ in range(ticks):
        now += tick_ms
        feed_until(now)
        engine.tick(now)
        dirty = engine.take_dirty()
        board = engine.board(now)
        rows = {r["bib"]: r for r in board["runners"]}
        changed = [rows[b] for b in sorted(dirty) if b in rows]
        update: dict[str, Any] = {
            "v": 1, "type": "update", "race": race.id, "seq": 0, "base_seq": 0,
            "generated_ms": now, "leader": board["leader"],
            "order": [r["bib"] for r in board["runners"]], "rows": changed,
            "checkpoints": [c for c in board["checkpoints"] if cps_before.get(c["id"]) != c]}
        if board["finishers"] != finishers_before:
            update["finishers"] = board["finishers"]
        fresh.append(frozenset(r["bib"] for r in changed
                               if rows_before.get(r["bib"], {}).get("last_fix_ms")
                               != r["last_fix_ms"]))
        updates.append(update)
        rows_before, finishers_before = rows, board["finishers"]
        cps_before = {c["id"]: c for c in board["checkpoints"]}
    return StandingsFeed(race.id, snapshot, updates, fresh)


class Stamper:
    """Gives the feed's records their ``seq``, ``base_seq`` and send time, in order.

    Rows with a new fix get ``last_fix_ms`` = the send time; the other rows of an update
    carry the value last sent for that bib, so a spectator sees ``last_fix_ms`` change
    only for a new fix, also when the feed wraps around to its first update.
    """

    def __init__(self, feed: StandingsFeed, seq: int = 0) -> None:
        self.feed = feed
        self.seq = seq
        self.base = seq
        self.i = 0
        self.last_fix: dict[str, int] = {}

    def snapshot(self, now_ms: int) -> dict[str, Any]:
        """The snapshot record, sent now; updates follow from it."""
        self.seq += 1
        self.base = self.seq
        self.last_fix.clear()
        board = self.feed.snapshot["board"]
        return dict(self.feed.snapshot, seq=self.seq, generated_ms=now_ms,
                    board=dict(board, generated_ms=now_ms))

    def update(self, now_ms: int) -> dict[str, Any]:
        """The next update record (cycling through the feed), sent now."""
        n = len(self.feed.updates)
        record, fresh = self.feed.updates[self.i % n], self.feed.fresh[self.i % n]
        self.i += 1
        self.seq += 1
        rows = []
        for r in record["rows"]:
            bib = r["bib"]
            if bib in fresh:
                self.last_fix[bib] = now_ms
            if bib in self.last_fix:
                r = dict(r, last_fix_ms=self.last_fix[bib])
            rows.append(r)
        out = dict(record, seq=self.seq, base_seq=self.base, generated_ms=now_ms, rows=rows)
        self.base = self.seq
        return out
