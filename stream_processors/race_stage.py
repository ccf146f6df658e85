"""The per-race stage, sans-I/O: runner journals and race commands in, the records of
``standings.v1``, ``runner-updates.v1``, ``alerts.v1`` and ``control-log.v1`` out.

It holds every runner of one race in a race engine, so ranks and time gaps see the whole
field. It follows each runner by replaying the journal entries of the per-runner stage
(``on_journal``: no fix is matched twice, no track is sent whole); entries are numbered
per runner, so a repeat is skipped and a gap is noticed: the stage then asks for the
runner's whole state (``sync_requests``, answered through ``on_sync``). ``publish`` is called on a
timer: it coalesces everything that changed since the previous call into at most one
standings update, one card per changed runner and the alert and audit records, each
with the race's next sequence number (docs/streams.md).

The race clock is the wall clock, or the latest fix time seen when that is ahead (a
race played in compressed time), so a replayed or simulated race ages as it should.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from race_engine.engine import EngineInputError, RaceEngine
from race_engine.flow import track
from race_engine.model import Race
from zegama_live.topics import ALERTS, CONTROL_LOG, RUNNER_UPDATES, STANDINGS

# A restarted stage may have published records past its last saved counter; it skips
# this many numbers so a consumer never sees a sequence number twice.
SEQ_RESTART_GAP = 10_000
# A runner whose journal has a gap is asked for again after this long without an answer.
SYNC_RETRY_MS = 10_000
Record = tuple[str, str, dict[str, Any]]  # (topic, key, value)


@dataclass(frozen=True)
class Timing:
    snapshot_ms: int = 10_000  # a full standings snapshot at least this often
    tick_ms: int = 5_000  # alert rules over the whole field this often
    track_step_m: float = 250.0
    card_ms: int = 2_000  # a runner's card at most this often (changes wait, coalesced)


class RaceStage:
    """One race's board, alerts and outputs."""

    def __init__(self, race: Race, timing: Timing = Timing()) -> None:
        self.race = race
        self.engine = RaceEngine(race)
        self.timing = timing
        self.seq = 0
        self.clock_ms = 0
        self._rows: dict[str, dict[str, Any]] = {}
        self._checkpoints: dict[str, dict[str, Any]] = {}
        self._finishers: list[dict[str, Any]] | None = None
        self._order: list[str] = []
        self._standings_seq: int | None = None
        self._last_snapshot_ms: int | None = None
        self._last_tick_ms: int | None = None
        self._alerts: list[tuple[dict[str, Any], int, str | None]] = []
        self._audits: list[dict[str, Any]] = []
        self._cards: set[str] = set()
        self._card_ms: dict[str, int] = {}  # bib -> wall time of its latest card
        self.counts: dict[str, int] = {}  # bib -> journal entries applied
        self._unevaluated: set[str] = set()  # changed runners whose alert rules are due
        self._gaps: dict[str, int | None] = {}  # bib -> when its state was asked for
        self.diverged = 0  # runners found to have followed another history (digests)
        self.saved = False  # False while there is state to save (``meta``)

    # ------------------------------------------------------------------ input

    def now(self, wall_ms: int) -> int:
        return max(wall_ms, self.clock_ms)

    def on_journal(self, bib: str, n0: int, entries: list[list[Any]],
                   wall_ms: int, digest: int | None = None) -> list[list[Any]] | None:
        """A runner's journal entries from the per-runner stage, the first numbered
        ``n0``, and the sender's ``RunnerState.digest`` after them. Returns the entries
        applied (repeats skipped), or None when entries are missing before them: they are
        dropped and the runner's state is asked for. The state is asked for too when the
        copy, at the sender's count, has another digest: it followed another history
        (entries a stale owner numbered the same), and only the whole state mends that.

        Raises:
            EngineInputError: a bib not in the race or a malformed entry.
        """
        have = self.counts.get(bib, 0)
        if n0 > have + 1:
            self._gaps.setdefault(self.engine.runner(bib).bib, None)
            return None
        fresh = entries[have + 1 - n0:]
        if fresh:
            self.engine.apply_journal(bib, fresh)
            self.counts[bib] = have + len(fresh)
            # An SOS raised or resolved, and fixes off the course, are judged at once:
            # off-course is timed on fix times, and a race played fast (or a late
            # burst) can be off and back within one publish round. The other rules are
            # minutes long and run once per publish round for the runners that changed.
            off_m = self.race.thresholds.off_course_m
            urgent = any(e[0] == "c" or (e[0] == "f" and (e[-1] or e[3] > off_m))
                         for e in fresh)
            self._runner_changed(bib, wall_ms, evaluate=urgent)
            # A stop or an excursion wholly inside these fixes (a late burst, or a race
            # played fast) is never the latest state a publish round judges.
            times = [e[1] for e in fresh if e[0] == "f"]
            if times:
                self._take_alerts(self.engine.review(bib, min(times), max(times),
                                                     self.now(wall_ms)), wall_ms)
        if digest is not None and self.counts.get(bib, 0) == n0 + len(entries) - 1 \
                and self.engine.runner(bib).digest() != digest:
            self.diverged += 1
            self._gaps.setdefault(bib, None)
        return fresh

    def on_sync(self, state: dict[str, Any], n: int, wall_ms: int) -> None:
        """A runner's whole state and journal count ``n`` (after a gap, or a restart).

        Raises:
            EngineInputError: a malformed snapshot or a bib not in the race.
        """
        self.engine.restore_runner(state)
        bib = state["bib"]
        self.counts[bib] = n
        self._gaps.pop(bib, None)
        self._runner_changed(bib, wall_ms)

    def sync_requests(self, wall_ms: int) -> list[str]:
        """Bibs whose state to ask the per-runner stage for now (each at most once per
        SYNC_RETRY_MS)."""
        out = []
        for bib, asked in self._gaps.items():
            if asked is None or wall_ms - asked >= SYNC_RETRY_MS:
                self._gaps[bib] = wall_ms
                out.append(bib)
        return out

    def _runner_changed(self, bib: str, wall_ms: int, evaluate: bool = True) -> None:
        last = self.engine.runners[bib].last_t
        if last is not None and last > self.clock_ms:
            self.clock_ms = last
        if evaluate:
            self._take_alerts(self.engine.evaluate(bib, self.now(wall_ms)), wall_ms)
        else:
            self._unevaluated.add(bib)
        self._cards.add(bib)

    def on_command(self, cmd: dict[str, Any], wall_ms: int) -> tuple[str, str | None]:
        """A race command (ack, weather, reassign): ``(result, error)``. Never raises."""
        now = self.now(wall_ms)
        before = self._control_state()
        try:
            changes = self.engine.on_control(cmd, now)
        except EngineInputError as e:
            return "rejected", str(e)
        self._take_alerts(changes, wall_ms, by=cmd.get("by"))
        self.saved = False
        return ("applied" if changes or self._control_state() != before else "unchanged"), None

    def _control_state(self) -> tuple[Any, ...]:
        e = self.engine
        return (frozenset(e.weather), tuple(sorted(e.devices.items())),
                frozenset(a["id"] for a in e.alerts() if a["acknowledged"]))

    def on_audit(self, entry: dict[str, Any]) -> None:
        self._audits.append(entry)

    def _take_alerts(self, changes: list[dict[str, Any]], wall_ms: int,
                     by: str | None = None) -> None:
        for c in changes:
            if c.get("kind") == "alert":
                self._alerts.append((c, self.now(wall_ms), by))
                self.saved = False

    # ----------------------------------------------------------------- output

    def publish(self, wall_ms: int) -> list[Record]:
        """Everything that changed since the last call, as records with sequence numbers."""
        now = self.now(wall_ms)
        if self._last_tick_ms is None or now - self._last_tick_ms >= self.timing.tick_ms:
            self._last_tick_ms = now
            self._take_alerts(self.engine.tick(now), wall_ms)
        else:
            for bib in sorted(self._unevaluated):
                self._take_alerts(self.engine.evaluate(bib, now), wall_ms)
        self._unevaluated.clear()
        self._cards |= self.engine.take_dirty()
        snapshot_due = (self._last_snapshot_ms is None
                        or wall_ms - self._last_snapshot_ms >= self.timing.snapshot_ms)
        out: list[Record] = []
        if snapshot_due or self._cards:
            out += self._standings(now, wall_ms, snapshot_due)
        due = sorted(bib for bib in self._cards
                     if wall_ms - self._card_ms.get(bib, -self.timing.card_ms)
                     >= self.timing.card_ms)
        for bib in due:
            self._card_ms[bib] = wall_ms
            r = self.engine.runner(bib)
            out.append(self._record(RUNNER_UPDATES, f"{self.race.id}:{bib}", {
                "v": 1, "race": self.race.id, "bib": bib, "generated_ms": now,
                "card": self.engine.runner_view(bib, now),
                "track": track(r, self.timing.track_step_m)}))
        self._cards.difference_update(due)
        for change, t_ms, by in self._alerts:
            alert = change["alert"]
            out.append(self._record(ALERTS, f"{self.race.id}:{alert['id']}", {
                "v": 1, "race": self.race.id, "t_ms": t_ms, "action": change["action"],
                "alert": alert, "by": by}))
        self._alerts.clear()
        for entry in self._audits:
            out.append(self._record(CONTROL_LOG, self.race.id, dict(entry)))
        self._audits.clear()
        if out:
            self.saved = False
        return out

    def _record(self, topic: str, key: str, value: dict[str, Any]) -> Record:
        self.seq += 1
        value["seq"] = self.seq
        return topic, key, value

    def _standings(self, now: int, wall_ms: int, snapshot: bool) -> list[Record]:
        board = self.engine.board(now)
        rows = {row["bib"]: row for row in board["runners"]}
        cps = {cp["id"]: cp for cp in board["checkpoints"]}
        order = list(rows)
        race = self.race.id
        if snapshot:
            rec = self._record(STANDINGS, race, {"v": 1, "type": "snapshot", "race": race,
                                                 "generated_ms": now, "board": board})
            self._last_snapshot_ms = wall_ms
        else:
            changed = [row for bib, row in rows.items()
                       if _same(row) != _same(self._rows.get(bib))]
            changed_cps = [cp for cid, cp in cps.items() if cp != self._checkpoints.get(cid)]
            new_finishers = board["finishers"] != self._finishers
            if not changed and not changed_cps and not new_finishers and order == self._order:
                return []
            value: dict[str, Any] = {
                "v": 1, "type": "update", "race": race, "base_seq": self._standings_seq,
                "generated_ms": now, "leader": board["leader"], "order": order,
                "rows": changed, "checkpoints": changed_cps}
            if new_finishers:
                value["finishers"] = board["finishers"]
            rec = self._record(STANDINGS, race, value)
            # A new rank or gap is news on the runner's card too.
            self._cards.update(row["bib"] for row in changed)
        self._rows, self._checkpoints, self._order = rows, cps, order
        self._finishers = board["finishers"]
        self._standings_seq = rec[2]["seq"]
        return [rec]

    # --------------------------------------------------------------- snapshot

    def meta(self) -> dict[str, Any]:
        """The race-level state to save (runners are saved one by one elsewhere)."""
        e = self.engine
        return {"v": 1, "race": self.race.id, "seq": self.seq, "clock_ms": self.clock_ms,
                "devices": dict(e.devices), "weather": sorted(e.weather),
                "alerts": e.alerts()}

    @classmethod
    def restore(cls, race: Race, meta: dict[str, Any] | None,
                runners: list[tuple[dict[str, Any], int]], timing: Timing = Timing()) -> RaceStage:
        """A stage rebuilt from saved state (``meta`` and each runner's snapshot with its
        journal count); it starts with a full snapshot.

        Raises:
            EngineInputError: malformed saved state.
        """
        stage = cls(race, timing)
        for snap, n in runners:
            stage.engine.restore_runner(snap)
            stage.counts[snap["bib"]] = n
            last = stage.engine.runner(snap["bib"]).last_t
            stage.clock_ms = max(stage.clock_ms, last or 0)
        if meta is not None:
            try:
                stage.seq = int(meta["seq"]) + SEQ_RESTART_GAP
                stage.clock_ms = max(stage.clock_ms, int(meta["clock_ms"]))
                for device, bib in meta["devices"].items():
                    if stage.engine.devices.get(device) != bib:
                        stage.engine.on_control({"op": "reassign", "device": device,
                                                 "bib": bib}, stage.clock_ms)
                stage.engine.weather = set(meta["weather"])
                stage.engine.book.restore(meta["alerts"])
            except (KeyError, TypeError, ValueError) as e:
                raise EngineInputError(f"malformed saved race state: {e!r}") from None
        stage.engine.take_dirty()
        # Cards of changes applied but maybe not published before the restart.
        stage._cards = set(stage.counts)
        return stage


def _same(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A row without its fields that only age (consumers derive them from the clock)."""
    if row is None:
        return None
    return {k: v for k, v in row.items() if k != "last_seen_s"}
