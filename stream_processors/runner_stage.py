"""The per-runner stage, sans-I/O: fixes, chip reads, runner commands and race settings
in; runner cards, alerts and runner summaries out.

A worker owns the runners of its ``race:bib`` partitions. For each it keeps the
runner's state in a race engine (the same core ``replay`` runs) and does all the work
about one runner there, once: map-matching, splits, status, the card (position,
splits, record pace, projections) and every alert rule. The per-race stage gets only a
summary per changed runner (race_engine.summary) for ranks and gaps.

``publish`` is called after each batch of input (the summaries of the changed runners
for the per-race stage, and what the input raised at once) and on a timer (the alert
rules of the runners changed since, of every runner it owns every ``tick_ms``, and the
due cards, at most one per runner per ``card_ms``). A summary carries the runner's
progress curve from the first point that changed, or whole once per ``whole_ms`` and
after a runner was taken over, so a copy that missed a tail is mended without being
asked.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from race_engine.engine import EngineInputError, RaceEngine
from race_engine.flow import track
from race_engine.model import Race
from stream_processors.sequence import Sequencer
from stream_processors.store import RunnerStore
from zegama_live.records import ChipReadRecord, PingRecord
from zegama_live.records.control import runner_of
from zegama_live.records.internal import RaceSettings, RunnerSummaries, RunnerSummaryRecord
from zegama_live.topics import ALERTS, RUNNER_UPDATES

Record = tuple[str, str, dict[str, Any]]  # (topic, key, value)
CURVE_CHANGES = frozenset({"f", "u", "s"})  # change kinds that move the progress curve


class UnknownRace(ValueError):
    """A record for a race this worker was not started with."""


@dataclass(frozen=True)
class Timing:
    tick_ms: int = 5_000  # every owned runner's alert rules this often
    track_step_m: float = 250.0
    card_ms: int = 2_000  # a runner's card at most this often (changes wait, coalesced)
    whole_ms: int = 30_000  # a runner's summary carries its whole curve this often


class RunnerStage:
    """The runners of this worker's partitions, in one engine per race."""

    def __init__(self, races: Mapping[str, Race], timing: Timing = Timing()) -> None:
        self.engines = {rid: RaceEngine(race) for rid, race in races.items()}
        self.timing = timing
        self.seq = Sequencer()
        self.store = RunnerStore()
        self.clock_ms = dict.fromkeys(races, 0)  # per race: the latest fix time seen
        self._owned: dict[str, set[str]] = {rid: set() for rid in races}
        self._changed: dict[str, set[str]] = {rid: set() for rid in races}
        self._cards: dict[str, set[str]] = {rid: set() for rid in races}
        self._unevaluated: dict[str, set[str]] = {rid: set() for rid in races}
        self._card_ms: dict[tuple[str, str], int] = {}
        self._sent: dict[tuple[str, str], int] = {}  # curve points the per-race stage has
        self._whole_ms: dict[tuple[str, str], int] = {}
        self._batch: dict[tuple[str, str], tuple[int, int]] = {}  # new fixes' time span
        # (change, race time, who, wall time) of the alert changes not published yet
        self._alerts: list[tuple[dict[str, Any], int, str | None, int]] = []
        self._last_tick_ms: int | None = None
        self._settings_seq: dict[str, int] = {}

    def engine(self, race: str) -> RaceEngine:
        """The engine of ``race``. Raises UnknownRace."""
        e = self.engines.get(race)
        if e is None:
            raise UnknownRace(f"race {race!r} is not one of this processor's races "
                              f"({', '.join(sorted(self.engines))}); start it with --race")
        return e

    # ------------------------------------------------------------- ownership

    def owns(self, race: str, bib: str) -> bool:
        return bib in self._owned.get(race, ())

    def owned(self) -> list[tuple[str, str]]:
        """``(race, bib)`` of the runners this worker owns, sorted."""
        return sorted((r, b) for r, bibs in self._owned.items() for b in bibs)

    def take_over(self, race: str, bib: str, stored: dict[str, Any] | None) -> None:
        """Own a runner from its stored state (a runner snapshot with its open
        ``alerts``, as ``RunnerStore.read`` gives it), or fresh when there is none. Its
        next summary carries the whole curve.

        Raises:
            UnknownRace, EngineInputError: unknown race or bib, malformed state.
        """
        engine = self.engine(race)
        engine.runner(bib)
        engine.book.forget(bib)
        if stored is None:  # never stored: whatever is in memory is from before a rebalance
            engine.reset_runner(bib)
        else:
            engine.restore_runner(stored)
            try:
                engine.book.restore(stored.get("alerts", []))
            except ValueError as e:
                raise EngineInputError(f"runner {bib}: {e}") from None
        r = engine.runners[bib]
        r.journal = []
        self._owned[race].add(bib)
        self._sent.pop((race, bib), None)
        self._changed[race].add(bib)
        self._cards[race].add(bib)
        if r.last_t is not None:
            self.clock_ms[race] = max(self.clock_ms[race], r.last_t)

    def forget(self) -> None:
        """After a rebalance: nothing is owned until taken over again."""
        for race, engine in self.engines.items():
            engine.take_dirty()
            for bib in self._owned[race]:
                engine.book.forget(bib)
                engine.runners[bib].journal = None
            for s in (self._owned, self._changed, self._cards, self._unevaluated):
                s[race].clear()
        for d in (self._card_ms, self._sent, self._whole_ms, self._batch):
            d.clear()
        self._alerts.clear()
        self.store.forget()

    # ----------------------------------------------------------------- input

    def _owned_runner(self, race: str, bib: str) -> RaceEngine:
        engine = self.engine(race)
        if bib not in self._owned[race]:
            raise EngineInputError(f"runner {race}:{bib} is not taken over by this worker")
        return engine

    def on_ping(self, rec: PingRecord, wall_ms: int) -> None:
        """Raises UnknownRace or EngineInputError (unknown or not owned bib)."""
        engine = self._owned_runner(rec.race, rec.bib)
        # An SOS is raised by the fix itself (its change comes back here).
        self._take_alerts(engine.on_fix(rec.bib, rec.fix, self.now(rec.race, wall_ms)),
                          wall_ms)
        t = rec.fix.t
        lo, hi = self._batch.get((rec.race, rec.bib), (t, t))
        self._batch[(rec.race, rec.bib)] = (min(lo, t), max(hi, t))
        self.clock_ms[rec.race] = max(self.clock_ms[rec.race], t)
        self._changed[rec.race].add(rec.bib)

    def on_chip_read(self, rec: ChipReadRecord, wall_ms: int) -> None:
        """Raises UnknownRace or EngineInputError (unknown bib or checkpoint)."""
        engine = self._owned_runner(rec.race, rec.read.bib)
        self._take_alerts(engine.on_chip_read(rec.read, self.now(rec.race, wall_ms)), wall_ms)
        self._changed[rec.race].add(rec.read.bib)

    def on_command(self, cmd: dict[str, Any], wall_ms: int) -> tuple[str, str | None]:
        """Apply a runner command (``records.control.RUNNER_OPS``, ``ack`` included):
        ``(result, error)`` with result ``applied``, ``unchanged`` or ``rejected``.
        Never raises."""
        race, bib = cmd.get("race"), runner_of(cmd)
        try:
            engine = self._owned_runner(str(race), str(bib))
            now = self.now(str(race), wall_ms)
            before = engine.runner_state(str(bib))
            changes = engine.on_control(cmd, now)
            after = engine.runner_state(str(bib))
        except (UnknownRace, EngineInputError) as e:
            return "rejected", str(e)
        self._take_alerts(changes, wall_ms, by=cmd.get("by"))
        if before == after and not changes:
            return "unchanged", None
        engine.touch(str(bib))
        self._changed[str(race)].add(str(bib))
        return "applied", None

    def on_settings(self, s: RaceSettings) -> bool:
        """Take a race's settings (weather, devices) if newer than those held; every
        owned runner's rules are evaluated again at the next publish. True when taken."""
        if s.race not in self.engines or s.seq <= self._settings_seq.get(s.race, 0):
            return False
        self._settings_seq[s.race] = s.seq
        self.engines[s.race].set_race_settings(s.weather, s.devices)
        self._last_tick_ms = None  # a full evaluation at the next publish
        return True

    def now(self, race: str, wall_ms: int) -> int:
        """The race clock: the wall clock, or the latest fix time when that is ahead (a
        race played in compressed time)."""
        return max(wall_ms, self.clock_ms.get(race, 0))

    # ---------------------------------------------------------------- output

    def publish(self, wall_ms: int, full: bool = True) -> tuple[list[Record],
                                                                 list[RunnerSummaries]]:
        """The output records due now, and the summaries of the runners that changed
        (one record per race). After a batch of input (``full`` False) only what is
        urgent: the summaries, the alerts the input raised itself (an SOS), and stops or
        excursions wholly inside the new fixes. A full round (the publish timer) also
        runs the alert rules of the runners changed since the last full round (of every
        owned runner each ``tick_ms``) and publishes the due cards."""
        tick = full and (self._last_tick_ms is None
                         or wall_ms - self._last_tick_ms >= self.timing.tick_ms)
        if tick:
            self._last_tick_ms = wall_ms
        summaries = []
        for race, engine in self.engines.items():
            now = self.now(race, wall_ms)
            changed = self._changed[race]
            for key, (lo, hi) in sorted(self._batch.items()):
                if key[0] == race:  # a stop or an excursion wholly inside new fixes
                    self._take_alerts(engine.review(key[1], lo, hi, now), wall_ms)
            if changed:
                summaries.append(RunnerSummaries(race=race, runners=[
                    self._summary(race, bib, wall_ms) for bib in sorted(changed)]))
            self._unevaluated[race] |= changed
            changed.clear()
            if full:
                due = self._owned[race] if tick else self._unevaluated[race]
                self._take_alerts(engine.tick(now, sorted(due)), wall_ms)
                self._cards[race] |= self._unevaluated[race] | (
                    engine.take_dirty() & self._owned[race])
                self._unevaluated[race].clear()
        self._batch.clear()
        out = self._alert_records()
        if full:
            for race in self.engines:
                out += self._due_cards(race, wall_ms)
        return out, summaries

    def _summary(self, race: str, bib: str, wall_ms: int) -> RunnerSummaryRecord:
        r = self.engines[race].runners[bib]
        key = (race, bib)
        changes = r.journal or []
        self.store.mark(f"{race}:{bib}".encode(), changes)
        r.journal = []
        sent = self._sent.get(key)
        if sent is None or wall_ms - self._whole_ms.get(key, 0) >= self.timing.whole_ms:
            start = 0
            self._whole_ms[key] = wall_ms
        else:
            times = [e[2] if e[0] == "s" else e[1] for e in changes if e[0] in CURVE_CHANGES]
            start = min(sent, bisect_left(r.a_t, min(times))) if times else sent
        self._sent[key] = len(r.a_t)
        t0 = r.layout.start_ms
        raw = r.raw_splits()
        return RunnerSummaryRecord(
            race=race, bib=bib, status=r.status.value, reason=r.reason, last_t=r.last_t,
            splits=[(s.checkpoint, s.t_ms, s.source) for s in raw],
            errs={s.checkpoint: s.err_s for s in raw if s.err_s is not None},
            start=start, m=[round(x, 2) for x in r.a_m[start:]],
            t=[x - t0 for x in r.a_t[start:]])

    def _due_cards(self, race: str, wall_ms: int) -> list[Record]:
        engine, step = self.engines[race], self.timing.track_step_m
        now = self.now(race, wall_ms)
        due = sorted(b for b in self._cards[race] if wall_ms - self._card_ms.get(
            (race, b), -self.timing.card_ms) >= self.timing.card_ms)
        out: list[Record] = []
        for bib in due:
            self._card_ms[(race, bib)] = wall_ms
            out.append((RUNNER_UPDATES, f"{race}:{bib}", {
                "v": 1, "race": race, "bib": bib, "seq": self.seq.next(wall_ms),
                "generated_ms": now, "card": engine.runner_view(bib, now),
                "track": track(engine.runners[bib], step)}))
        self._cards[race].difference_update(due)
        return out

    def _take_alerts(self, changes: Iterable[dict[str, Any]], wall_ms: int,
                     by: str | None = None) -> None:
        for c in changes:
            if c.get("kind") == "alert":
                self._alerts.append((c, self.now(c["race"], wall_ms), by, wall_ms))

    def _alert_records(self) -> list[Record]:
        out: list[Record] = []
        for change, t_ms, by, wall_ms in self._alerts:
            alert = change["alert"]
            out.append((ALERTS, f"{alert['race']}:{alert['id']}", {
                "v": 1, "race": alert["race"], "seq": self.seq.next(wall_ms),
                "t_ms": t_ms, "action": change["action"], "alert": alert, "by": by}))
        self._alerts.clear()
        return out

    # --------------------------------------------------------------- storage

    def writes(self, race: str, bib: str) -> list[tuple[bytes, bytes]]:
        """The table writes that store an owned runner now (its parts that changed)."""
        engine = self.engines[race]
        r = engine.runners[bib]
        key = f"{race}:{bib}".encode()
        if r.journal:
            self.store.mark(key, r.journal)
        return self.store.writes(key, r, {"alerts": engine.book.of(bib)})

