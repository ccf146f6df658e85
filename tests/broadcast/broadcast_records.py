"""Records of the processors' output topics, made from the real race engine.

A simulated race is driven through ``RaceEngine`` tick by tick, and each tick gives the
records docs/streams.md defines, with one ``seq`` counter per race: runner-updates for
the runners whose card changed, alerts raised or cleared, and a standings snapshot (the
first tick and every ``snapshot_every`` ticks) or update.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from race_engine.board import row_moved
from race_engine.engine import RaceEngine
from race_engine.racefolder import load_race
from race_engine.simulate import SimOptions, simulate
from zegama_live.topics import ALERTS, CONTROL_LOG, RUNNER_UPDATES, STANDINGS

MINI = Path(__file__).resolve().parents[1] / "data" / "races" / "mini"
Json = dict[str, Any]


def race_copy(tmp: Path, race_id: str) -> Path:
    """The mini race folder copied under the name ``race_id`` (its race id)."""
    dest = tmp / race_id
    shutil.copytree(MINI, dest)
    return dest


class RaceRecords:
    """Drive a simulated race and yield ``(topic, key, record)`` per tick."""

    def __init__(self, folder: Path, seed: int = 7, tick_ms: int = 20_000,
                 snapshot_every: int = 5) -> None:
        self.race_dir = folder
        self.race = load_race(folder)
        sim = simulate(self.race, np.random.default_rng(seed),
                       SimOptions(runners=len(self.race.entrants), incidents=True))
        self.pings = sorted(sim.pings(), key=lambda p: p[1])
        self.engine = RaceEngine(self.race)
        self.tick_ms = tick_ms
        self.snapshot_every = snapshot_every
        self.seq = 100
        self.ticks = 0
        self.board: Json | None = None  # the board as a consumer of the records holds it
        self.sent: dict[str, Json] = {}  # each row as last sent (the processors' rule)
        self.tracks: dict[str, list[list[float]]] = {}

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def run(self) -> Iterator[list[tuple[str, str, Json]]]:
        """The records of each tick, from the start to the last fix."""
        i, now = 0, self.race.start_ms
        while i < len(self.pings):
            now += self.tick_ms
            changes = []
            while i < len(self.pings) and self.pings[i][1] <= now:
                fix, arrival = self.pings[i]
                changes += self.engine.on_fix(None, fix, arrival)
                i += 1
            changes += self.engine.tick(now)
            yield self.tick_records(now, changes)

    def tick_records(self, now: int, changes: list[Json]) -> list[tuple[str, str, Json]]:
        """One tick's records from the engine's changes."""
        out: list[tuple[str, str, Json]] = []
        board = self.engine.board(now)
        rid = self.race.id
        for bib in sorted(self.engine.take_dirty()):
            card = self.engine.runner_view(bib, now)
            out.append((RUNNER_UPDATES, f"{rid}:{bib}", {
                "v": 1, "race": rid, "bib": bib, "seq": self.next_seq(), "generated_ms": now,
                "card": card, "track": self._track(bib, card, now)}))
        for change in changes:
            if change["kind"] == "alert":
                out.append((ALERTS, f"{rid}:{change['alert']['id']}", {
                    "v": 1, "race": rid, "seq": self.next_seq(), "t_ms": now,
                    "action": change["action"], "alert": change["alert"], "by": None}))
        out.append((STANDINGS, rid, self._standings(board, now)))
        self.ticks += 1
        return out

    def _standings(self, board: Json, now: int) -> Json:
        prev, self.board = self.board, board
        seq, rid = self.next_seq(), self.race.id
        if prev is None or self.ticks % self.snapshot_every == 0:
            self.standings_seq = seq
            self.sent = {r["bib"]: r for r in board["runners"]}
            return {"v": 1, "type": "snapshot", "race": rid, "seq": seq, "generated_ms": now,
                    "board": board}
        old_cps = {c["id"]: c for c in prev["checkpoints"]}
        rec = {"v": 1, "type": "update", "race": rid, "seq": seq, "base_seq": self.standings_seq,
               "generated_ms": now, "leader": board["leader"],
               "order": [r["bib"] for r in board["runners"]],
               "rows": self._moved(board),
               "checkpoints": [c for c in board["checkpoints"] if old_cps.get(c["id"]) != c]}
        if board["finishers"] != prev["finishers"]:
            rec["finishers"] = board["finishers"]
        self.standings_seq = seq
        # What a consumer holds after applying it: the rows as last sent.
        self.board = {**board, "runners": [self.sent[r["bib"]] for r in board["runners"]]}
        return rec

    def _moved(self, board: Json) -> list[Json]:
        """The rows the processors send again (race_engine.board.row_moved)."""
        rows = [r for r in board["runners"] if row_moved(r, self.sent.get(r["bib"]))]
        self.sent.update((r["bib"], r) for r in rows)
        return rows

    def _track(self, bib: str, card: Json, now: int) -> list[list[float]]:
        track = self.tracks.setdefault(bib, [])
        progress = (card.get("position") or {}).get("progress_m")
        if progress is None:
            return list(track)
        point = [round((now - self.race.start_ms) / 1000.0, 1), float(progress)]
        if len(track) >= 2 and progress < track[-2][1] + 250.0:
            track[-1] = point  # the latest point moves until 250 m more are done
        else:
            track.append(point)
        return list(track)

    def control_log(self, command: Json, result: str = "applied") -> tuple[str, str, Json]:
        """The control-log.v1 record answering ``command``."""
        return (CONTROL_LOG, self.race.id, {
            "v": 1, "race": self.race.id, "seq": self.next_seq(), "t_ms": command["at_ms"] + 50,
            "id": command["id"], "op": command["op"], "by": command["by"],
            "at_ms": command["at_ms"], "result": result, "error": None, "command": command})
