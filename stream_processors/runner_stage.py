"""The per-runner stage, sans-I/O: fixes, chip reads and runner commands in, runner
snapshots and command results out.

A worker owns some of the ``race:bib`` partitions; for each runner it owns it keeps the
runner's state in a race engine (the same core ``replay`` runs), restored from the
worker's table the first time the runner is seen after a start or a rebalance. After a
batch, ``take_snapshots`` hands back every runner that changed, once, for the table and
for the per-race stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from race_engine.engine import EngineInputError, RaceEngine
from race_engine.model import Race
from zegama_live.records import ChipReadRecord, PingRecord

RUNNER_OPS = frozenset({"dnf", "dns", "dsq", "reinstate", "resolve_sos", "manual_split"})


class UnknownRace(ValueError):
    """A record for a race this worker was not started with."""


class RunnerStage:
    """The runners of this worker's partitions, in one engine per race."""

    def __init__(self, races: Mapping[str, Race]) -> None:
        self.engines = {rid: RaceEngine(race) for rid, race in races.items()}
        self._loaded: set[tuple[str, str]] = set()

    def engine(self, race: str) -> RaceEngine:
        """The engine of ``race``. Raises UnknownRace."""
        e = self.engines.get(race)
        if e is None:
            raise UnknownRace(f"race {race!r} is not one of this processor's races "
                              f"({', '.join(sorted(self.engines))}); start it with --race")
        return e

    def is_loaded(self, race: str, bib: str) -> bool:
        return (race, bib) in self._loaded

    def loaded(self) -> list[tuple[str, str]]:
        """``(race, bib)`` of the runners this worker holds, sorted."""
        return sorted(self._loaded)

    def load(self, race: str, bib: str, snapshot: dict[str, Any] | None) -> None:
        """Take a runner over: from its saved snapshot, or fresh when there is none.

        Raises:
            UnknownRace, EngineInputError: unknown race or bib, malformed snapshot.
        """
        engine = self.engine(race)
        engine.runner(bib)
        if snapshot is not None:
            engine.restore_runner(snapshot)
            engine.take_dirty()
        self._loaded.add((race, bib))

    def forget(self) -> None:
        """After a rebalance: every runner is re-read from the table when next seen."""
        self._loaded.clear()

    def on_ping(self, rec: PingRecord, now_ms: int) -> None:
        """Raises UnknownRace or EngineInputError (unknown bib)."""
        self.engine(rec.race).on_fix(rec.bib, rec.fix, now_ms)

    def on_chip_read(self, rec: ChipReadRecord, now_ms: int) -> None:
        """Raises UnknownRace or EngineInputError (unknown bib or checkpoint)."""
        self.engine(rec.race).on_chip_read(rec.read, now_ms)

    def on_command(self, cmd: dict[str, Any], now_ms: int) -> tuple[str, str | None]:
        """Apply a runner command (one of RUNNER_OPS): ``(result, error)`` with result
        ``applied``, ``unchanged`` or ``rejected``. Never raises."""
        try:
            engine = self.engine(cmd["race"])
            before = engine.runner_state(cmd["bib"])
            engine.on_control(cmd, now_ms)
            after = engine.runner_state(cmd["bib"])
        except (UnknownRace, EngineInputError) as e:
            return "rejected", str(e)
        if before == after:
            return "unchanged", None
        engine.touch(cmd["bib"])
        return "applied", None

    def take_snapshots(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(race, bib, snapshot)`` of every runner changed since the last call."""
        out = []
        for race, engine in self.engines.items():
            for bib in sorted(engine.take_dirty()):
                out.append((race, bib, engine.runner_state(bib)))
        return out
