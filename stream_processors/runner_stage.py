"""The per-runner stage, sans-I/O: fixes, chip reads and runner commands in, runner
journals and command results out.

A worker owns some of the ``race:bib`` partitions; for each runner it owns it keeps the
runner's state in a race engine (the same core ``replay`` runs), restored from the
worker's table the first time the runner is seen after a start or a rebalance. Every
change to a runner is journaled (RunnerState.journal); after a batch, ``take_journals``
hands back each changed runner's new entries, numbered by a per-runner count that
survives restarts, for the per-race stage to follow the runner with (RaceStage.on_journal)
and the table to store (stream_processors.store).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from race_engine.engine import EngineInputError, RaceEngine
from race_engine.model import Race
from zegama_live.records import ChipReadRecord, PingRecord


class UnknownRace(ValueError):
    """A record for a race this worker was not started with."""


class RunnerStage:
    """The runners of this worker's partitions, in one engine per race."""

    def __init__(self, races: Mapping[str, Race]) -> None:
        self.engines = {rid: RaceEngine(race) for rid, race in races.items()}
        self._counts: dict[tuple[str, str], int] = {}  # loaded runners: journal count

    def engine(self, race: str) -> RaceEngine:
        """The engine of ``race``. Raises UnknownRace."""
        e = self.engines.get(race)
        if e is None:
            raise UnknownRace(f"race {race!r} is not one of this processor's races "
                              f"({', '.join(sorted(self.engines))}); start it with --race")
        return e

    def is_loaded(self, race: str, bib: str) -> bool:
        return (race, bib) in self._counts

    def loaded(self) -> list[tuple[str, str]]:
        """``(race, bib)`` of the runners this worker holds, sorted."""
        return sorted(self._counts)

    def load(self, race: str, bib: str, snapshot: dict[str, Any] | None, n: int = 0) -> None:
        """Take a runner over: from its saved snapshot and journal count ``n``, or fresh
        when there is none.

        Raises:
            UnknownRace, EngineInputError: unknown race or bib, malformed snapshot.
        """
        engine = self.engine(race)
        if snapshot is None:  # never stored: whatever is in memory is from before a rebalance
            engine.reset_runner(bib)
        else:
            engine.restore_runner(snapshot)
        engine.runner(bib).journal = []
        self._counts[(race, bib)] = n

    def forget(self) -> None:
        """After a rebalance: every runner is re-read from the table when next seen."""
        self._counts.clear()
        for engine in self.engines.values():
            engine.take_dirty()
            for r in engine.runners.values():
                r.journal = None

    def on_ping(self, rec: PingRecord, now_ms: int) -> None:
        """Raises UnknownRace or EngineInputError (unknown bib)."""
        self.engine(rec.race).on_fix(rec.bib, rec.fix, now_ms)

    def on_chip_read(self, rec: ChipReadRecord, now_ms: int) -> None:
        """Raises UnknownRace or EngineInputError (unknown bib or checkpoint)."""
        self.engine(rec.race).on_chip_read(rec.read, now_ms)

    def on_command(self, cmd: dict[str, Any], now_ms: int) -> tuple[str, str | None]:
        """Apply a runner command (one of ``records.control.RUNNER_OPS``): ``(result,
        error)`` with result ``applied``, ``unchanged`` or ``rejected``. Never raises."""
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

    def take_journals(self) -> list[tuple[str, str, int, list[list[Any]]]]:
        """``(race, bib, n0, entries)`` of every runner changed since the last call:
        its new journal entries, the first numbered ``n0`` (counts start at 1)."""
        out = []
        for race, engine in self.engines.items():
            for bib in sorted(engine.take_dirty()):
                key = (race, bib)
                r = engine.runners[bib]
                if key not in self._counts or not r.journal:
                    continue
                entries, r.journal = r.journal, []
                n0 = self._counts[key] + 1
                self._counts[key] += len(entries)
                out.append((race, bib, n0, entries))
        return out

    def count(self, race: str, bib: str) -> int:
        """The journal count of a loaded runner (entries handed out so far)."""
        return self._counts[(race, bib)]

    def snapshot(self, race: str, bib: str) -> tuple[dict[str, Any], int]:
        """A loaded runner's whole state and journal count (for a copy that fell behind).

        Raises:
            UnknownRace, EngineInputError: unknown race or bib.
        """
        return self.engine(race).runner_state(bib), self._counts[(race, bib)]
