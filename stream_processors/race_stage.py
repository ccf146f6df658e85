"""The per-race stage, sans-I/O: runner summaries, race commands and command audits in;
``standings.v1`` and ``control-log.v1`` records and the race's settings out.

It keeps of every runner of one race only its summary (race_engine.summary: status,
splits, the progress curve), enough for ranks and time gaps, and never runs the engine
over fixes: the per-runner stage did that once. A summary is an absolute value (its
curve carried from the first point that changed), so a repeat changes nothing and a
tail that does not fit (points before it missing here) waits for the runner's next
whole curve, which comes at least every ``whole_ms``.

It applies the race commands (``weather``, ``reassign``) and publishes the race's
settings for every worker's alert rules. ``publish`` is called on a timer: it
coalesces what changed into at most one standings update per call, a full snapshot at
least every ``snapshot_ms``, and the audit records, each with a sequence number
(stream_processors.sequence).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from race_engine.board import build_board, row_moved
from race_engine.engine import EngineInputError
from race_engine.model import Race, Status
from race_engine.record import RecordCurve
from race_engine.runner import Layout, Split
from race_engine.summary import RunnerSummary
from stream_processors.sequence import Sequencer
from zegama_live.records.internal import RaceSettings, RunnerSummaryRecord
from zegama_live.topics import CONTROL_LOG, STANDINGS

Record = tuple[str, str, dict[str, Any]]  # (topic, key, value)


@dataclass(frozen=True)
class Timing:
    snapshot_ms: int = 10_000  # a full standings snapshot at least this often


class RaceStage:
    """One race's board, settings and control log."""

    def __init__(self, race: Race, timing: Timing = Timing()) -> None:
        self.race = race
        self.timing = timing
        self.layout = Layout.from_race(race)
        self.curve = RecordCurve.from_race(race)
        self.entrants = {e.bib: e for e in race.entrants}
        self.zones = frozenset(z.id for z in race.danger_zones)
        self.summaries = {b: RunnerSummary(b, self.layout) for b in self.entrants}
        self.seq = Sequencer()
        self.clock_ms = 0  # the latest fix time seen
        self.weather: set[str] = set()
        self.devices: dict[str, str] = {e.device: e.bib for e in race.entrants if e.device}
        self.changed_from: dict[str, int] = {}  # bib -> first curve point not stored yet
        self.torn = 0  # tails that did not fit (waiting for the runner's whole curve)
        self.saved = False  # False while there is race state to save (``meta``)
        self._settings_due = True
        self._dirty = True
        self._audits: list[dict[str, Any]] = []
        self._rows: dict[str, dict[str, Any]] = {}
        self._checkpoints: dict[str, dict[str, Any]] = {}
        self._finishers: list[dict[str, Any]] | None = None
        self._order: list[str] = []
        self._standings_seq: int | None = None
        self._last_snapshot_ms: int | None = None

    def now(self, wall_ms: int) -> int:
        return max(wall_ms, self.clock_ms)

    # ------------------------------------------------------------------ input

    def on_summary(self, rec: RunnerSummaryRecord) -> bool:
        """A runner's summary; True when it changed what is held.

        Raises:
            EngineInputError: a bib not in the race, or a malformed curve.
        """
        s = self.summaries.get(rec.bib)
        if s is None:
            raise EngineInputError(f"race {self.race.id} has no runner with bib {rec.bib!r}")
        try:
            fits = s.extend(rec.start, rec.m, [x + self.layout.start_ms for x in rec.t])
            splits = tuple(Split(c, t, src, rec.errs.get(c)) for c, t, src in rec.splits
                           if c in self.layout.index)
            status = Status(rec.status)
        except ValueError as e:
            raise EngineInputError(f"runner {rec.bib}: {e}") from None
        if fits:
            prev = self.changed_from.get(rec.bib)
            self.changed_from[rec.bib] = rec.start if prev is None else min(prev, rec.start)
        else:
            self.torn += 1
            self.changed_from.setdefault(rec.bib, len(s.curve_m))  # the head only
        s.status, s.reason, s.last_t, s.raw_splits = status, rec.reason, rec.last_t, splits
        if rec.last_t is not None and rec.last_t > self.clock_ms:
            self.clock_ms = rec.last_t
        self._dirty = True
        return True

    def on_command(self, cmd: dict[str, Any], wall_ms: int) -> tuple[str, str | None]:
        """A race command (``weather``, ``reassign``): ``(result, error)``. Never raises."""
        op = cmd.get("op")
        if op == "weather":
            zone, on = cmd.get("zone"), cmd.get("on")
            if zone not in self.zones or not isinstance(on, bool):
                return "rejected", (f"race {self.race.id} has no danger zone {zone!r}; use "
                                    f"one of {', '.join(sorted(self.zones))}")
            if (zone in self.weather) == on:
                return "unchanged", None
            (self.weather.add if on else self.weather.discard)(zone)
        elif op == "reassign":
            device, bib = cmd.get("device"), cmd.get("bib")
            if bib not in self.entrants or not isinstance(device, str):
                return "rejected", f"race {self.race.id} has no runner with bib {bib!r}"
            if self.devices.get(device) == bib:
                return "unchanged", None
            self.devices[device] = bib
        else:
            return "rejected", f"{op!r} is not a race command"
        self._settings_due = True
        self.saved = False
        return "applied", None

    def on_audit(self, entry: dict[str, Any]) -> None:
        self._audits.append(entry)

    # ----------------------------------------------------------------- output

    def settings(self, wall_ms: int) -> RaceSettings | None:
        """The race's settings when they changed (or were never sent) since the last
        call."""
        if not self._settings_due:
            return None
        self._settings_due = False
        return RaceSettings(race=self.race.id, seq=self.seq.next(wall_ms),
                            weather=sorted(self.weather), devices=dict(self.devices))

    def publish(self, wall_ms: int) -> list[Record]:
        """Everything that changed since the last call, as records with sequence numbers."""
        now = self.now(wall_ms)
        snapshot_due = (self._last_snapshot_ms is None
                        or wall_ms - self._last_snapshot_ms >= self.timing.snapshot_ms)
        out: list[Record] = []
        if snapshot_due or self._dirty:
            out += self._standings(now, wall_ms, snapshot_due)
            self._dirty = False
        for entry in self._audits:
            out.append((CONTROL_LOG, self.race.id,
                        {**entry, "seq": self.seq.next(wall_ms)}))
        self._audits.clear()
        if out:
            self.saved = False
        return out

    def _standings(self, now: int, wall_ms: int, snapshot: bool) -> list[Record]:
        # Ranks and gaps at the race's newest fix: the wall clock runs ahead of every
        # runner when fixes are late or the race is replayed, and would move them all.
        board = build_board(self.race.id, self.summaries, self.entrants, self.curve, now,
                            min(now, self.clock_ms or now))
        rows = {row["bib"]: row for row in board["runners"]}
        cps = {cp["id"]: cp for cp in board["checkpoints"]}
        order = list(rows)
        race = self.race.id
        if snapshot:
            seq = self.seq.next(wall_ms)
            value: dict[str, Any] = {"v": 1, "type": "snapshot", "race": race, "seq": seq,
                                     "generated_ms": now, "board": board}
            self._last_snapshot_ms = wall_ms
        else:
            changed = [row for bib, row in rows.items() if row_moved(row, self._rows.get(bib))]
            # What consumers hold: the rows as last sent.
            held = {row["bib"]: row for row in changed}
            rows = {bib: held.get(bib) or self._rows[bib] for bib in rows}
            changed_cps = [cp for cid, cp in cps.items() if cp != self._checkpoints.get(cid)]
            new_finishers = board["finishers"] != self._finishers
            if not changed and not changed_cps and not new_finishers and order == self._order:
                return []
            seq = self.seq.next(wall_ms)
            value = {"v": 1, "type": "update", "race": race, "seq": seq,
                     "base_seq": self._standings_seq, "generated_ms": now,
                     "leader": board["leader"], "order": order, "rows": changed,
                     "checkpoints": changed_cps}
            if new_finishers:
                value["finishers"] = board["finishers"]
        self._rows, self._checkpoints, self._order = rows, cps, order
        self._finishers = board["finishers"]
        self._standings_seq = seq
        return [(STANDINGS, race, value)]

    # --------------------------------------------------------------- snapshot

    def meta(self) -> dict[str, Any]:
        """The race-level state to save (runners are saved one by one elsewhere)."""
        return {"v": 2, "race": self.race.id, "seq": self.seq.last, "clock_ms": self.clock_ms,
                "devices": dict(self.devices), "weather": sorted(self.weather)}

    @classmethod
    def restore(cls, race: Race, meta: dict[str, Any] | None,
                summaries: list[RunnerSummary], timing: Timing = Timing()) -> RaceStage:
        """A stage rebuilt from saved state (``meta`` and the runners' stored
        summaries); it starts with a full snapshot and sends its settings.

        Raises:
            EngineInputError: malformed saved state.
        """
        stage = cls(race, timing)
        for s in summaries:
            if s.bib in stage.summaries:
                stage.summaries[s.bib] = s
                stage.clock_ms = max(stage.clock_ms, s.last_t or 0)
        if meta is not None and meta.get("v") == 2:
            try:
                stage.seq.last = int(meta["seq"])
                stage.clock_ms = max(stage.clock_ms, int(meta["clock_ms"]))
                stage.devices = {str(d): str(b) for d, b in meta["devices"].items()}
                stage.weather = set(meta["weather"]) & stage.zones
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise EngineInputError(f"malformed saved race state: {e!r}") from None
        return stage
