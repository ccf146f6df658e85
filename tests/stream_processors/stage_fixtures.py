"""Shared set-up of the stage tests: a simulated race fed through the per-runner stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from race_engine.model import Fix, Race
from race_engine.racefolder import load_race
from race_engine.simulate import SimOptions, simulate
from stream_processors.race_stage import RaceStage
from stream_processors.runner_stage import RunnerStage, Timing
from zegama_live.records import PingRecord
from zegama_live.records.internal import RunnerSummaries, RunnerSummaryRecord

RACE_DIR = Path(__file__).resolve().parents[2] / "races" / "zegama-2026"
Record = tuple[str, str, dict[str, Any]]


def zegama() -> Race:
    return load_race(RACE_DIR)


@dataclass
class Fed:
    """A runner stage that took over every entrant and was fed a simulated race."""

    race: Race
    runners: RunnerStage
    records: list[Record] = field(default_factory=list)
    summaries: list[RunnerSummaryRecord] = field(default_factory=list)
    batches: list[RunnerSummaries] = field(default_factory=list)
    wall: int = 0

    def publish(self, wall: int) -> None:
        self.wall = wall
        records, batches = self.runners.publish(wall)
        self.records += records
        self.batches += batches
        self.summaries += flat(batches)


def fed_race(race: Race, runners: int = 6, seed: int = 3, every: int = 200,
             timing: Timing | None = None, incidents: bool = False) -> Fed:
    sim = simulate(race, np.random.default_rng(seed),
                   SimOptions(runners=runners, incidents=incidents))
    bibs = {e.device: e.bib for e in race.entrants}
    stage = RunnerStage({race.id: race}, timing or Timing())
    for e in race.entrants:
        stage.take_over(race.id, e.bib, None)
    fed = Fed(race, stage)
    for n, (fix, arrival) in enumerate(sim.pings()):
        stage.on_ping(PingRecord(race.id, bibs[fix.device], fix, arrival, "batch"), arrival)
        if n % every == 0:
            fed.publish(arrival)
    fed.publish(fed.wall + 1)
    return fed


def flat(batches: list[RunnerSummaries]) -> list[RunnerSummaryRecord]:
    """The summaries of a round's records (one per race)."""
    return [s for batch in batches for s in batch.runners]


def board_of(race: Race, summaries: list[RunnerSummaryRecord]) -> RaceStage:
    stage = RaceStage(race)
    for s in summaries:
        stage.on_summary(s)
    return stage


def by_topic(records: list[Record], topic: str) -> list[dict[str, Any]]:
    return [v for t, _, v in records if t == topic]


def ping(race: Race, bib: str, t: int, metres: float, off_m: float = 0.0) -> PingRecord:
    """A fix of ``bib`` at ``metres`` along the course, ``off_m`` north of it."""
    lat, lon = race.course.position_at(metres)
    return PingRecord(race.id, bib, Fix(f"dev-{bib}", t, lat + off_m / 111_000.0, lon),
                      t, "batch")
