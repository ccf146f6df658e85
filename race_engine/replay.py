"""Replay: the race engine run over a recorded stream of fixes, offline.

The same engine the live processors run, fed one fix at a time in arrival order. A
line's ``arrival`` key (epoch ms, written by ``simulate``) is the time the fix reached
ingest and drives the engine's clock; without it the fix time does. Alert rules are
evaluated every ``tick_ms`` of that clock, as the live processors do on their timer.
Bad lines are counted by reason and skipped, never fatal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from race_engine.engine import EngineInputError, RaceEngine
from race_engine.fixes import FixError, decode_fix
from race_engine.model import Race

BAD_JSON = "bad_json"
UNKNOWN_DEVICE = "unknown_device"
MAX_EXAMPLES = 20


@dataclass
class ReplayStats:
    lines: int = 0
    fixes: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # the first few rejections, by line

    def reject(self, line_no: int, reason: str, message: str) -> None:
        self.rejected[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"line {line_no}: {reason}: {message}")


@dataclass
class ReplayResult:
    splits: list[dict[str, Any]]  # {"bib", "checkpoint", "t", "rank"}, by bib then course order
    standings: dict[str, Any]  # the final board (race_engine.board)
    alerts: list[dict[str, Any]]  # every alert change, in the order it happened
    stats: ReplayStats
    engine: RaceEngine


def replay(race: Race, lines: Iterable[bytes | str], *, tick_ms: int = 30_000) -> ReplayResult:
    """Run the engine over ``lines`` (device JSON, one fix per line) in the order given."""
    engine = RaceEngine(race)
    stats = ReplayStats()
    alerts: list[dict[str, Any]] = []
    now = race.start_ms
    next_tick = race.start_ms + tick_ms
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        stats.lines += 1
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            stats.reject(line_no, BAD_JSON, f"not a JSON object: {exc}")
            continue
        try:
            fix = decode_fix(obj)
        except FixError as exc:
            stats.reject(line_no, exc.reason, exc.message)
            continue
        arrival = obj.get("arrival")
        # The replay clock never runs backwards, whatever the file says.
        now = max(now, arrival if isinstance(arrival, int) else fix.t)
        while next_tick <= now:
            alerts += _stamped(engine.tick(next_tick), next_tick)
            next_tick += tick_ms
        try:
            changes = engine.on_fix(None, fix, now)
        except EngineInputError as exc:
            stats.reject(line_no, UNKNOWN_DEVICE, str(exc))
            continue
        stats.fixes += 1
        alerts += _stamped([c for c in changes if c["kind"] == "alert"], now)
    alerts += _stamped(engine.tick(now), now)
    standings = engine.board(now)
    return ReplayResult(final_splits(standings), standings, alerts, stats, engine)


def final_splits(standings: dict[str, Any]) -> list[dict[str, Any]]:
    """The ranked checkpoint splits of a board as ``{"bib", "checkpoint", "t", "rank"}`` rows."""
    order = {cp["id"]: n for n, cp in enumerate(standings["checkpoints"])}
    rows = [
        {"bib": s["bib"], "checkpoint": cp["id"], "t": s["t_ms"], "rank": s["rank"]}
        for cp in standings["checkpoints"]
        for s in cp["splits"]
    ]
    rows.sort(key=lambda r: (r["bib"], order[r["checkpoint"]]))
    return rows


def _stamped(changes: list[dict[str, Any]], now_ms: int) -> list[dict[str, Any]]:
    return [{"t_ms": now_ms, **c} for c in changes]
