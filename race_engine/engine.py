"""The race engine: one race's runners, board and alerts behind a few calls.

The live Faust processors, the ``replay`` tool and the tests all drive a race through
this class; it does no I/O and reads no clock: every call takes the time it runs at
(``now_ms``, epoch ms), and everything it computes follows from the fix times and the
``now_ms`` values passed in.

    engine = RaceEngine(race)      # one per race; several races: {race.id: RaceEngine(race)}
    engine.on_fix(bib, fix, now_ms)       -> changes   # bib None: looked up by fix.device
    engine.on_chip_read(read, now_ms)     -> changes
    engine.on_control(cmd, now_ms)        -> changes   # see ``on_control`` for the commands
    engine.tick(now_ms)                   -> changes   # alert rules; call about twice a second
    engine.evaluate(bib, now_ms)          -> changes   # one runner's alert rules
    engine.board(now_ms)                  -> dict      # standings, checkpoint splits, finishers
    engine.runner_view(bib, now_ms)       -> dict      # a runner's public card
    engine.alerts()                       -> list[dict]  # active alerts, most urgent first
    engine.take_dirty()                   -> set[str]  # bibs whose card changed since last call
    engine.runner_state(bib) / engine.restore_runner(state)   # per-runner snapshot (JSON-able)
    engine.to_dict() / RaceEngine.from_dict(race, d)          # the whole engine

A change is a JSON-able dict with ``kind`` in ``runner`` (a fix was taken), ``split``
(``checkpoint``, ``t_ms``, ``source``; ``t_ms`` None when a split went away),
``status`` (``status``, ``reason``) or ``alert`` (``action`` raised/cleared/
acknowledged and the ``alert``), plus ``race`` and ``bib``. A chip read implying an
implausible speed is held, not applied: it raises ``implausible_chip_read`` at once
and a ``manual_split`` at its checkpoint settles it. Bad input (unknown bib,
device, checkpoint, command) raises ``EngineInputError`` (a ValueError) naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from race_engine import matching
from race_engine.alerts import Alert, AlertBook, Rules, evaluate
from race_engine.board import build_board, ranked
from race_engine.course import Course
from race_engine.episodes import episodes
from race_engine.model import ChipRead, Entrant, Fix, Race, Status
from race_engine.projections import (
    ESTIMATE_AFTER_MS,
    MIN_PROGRESS_M,
    Eta,
    moved_forward,
    p_by,
    project,
)
from race_engine.record import RecordCurve, fmt_delta
from race_engine.runner import CHIP, MANUAL, Layout, RunnerState

Matcher = Callable[..., matching.Match]
NEXT_ETAS = 3
RANKING = ("rank", "gap_leader_s", "gap_ahead_s")
# A late fix re-matches at most this many fixes on each side of it.
REMATCH_MAX = 8
_STATUS_OPS = {"dnf": Status.DNF, "dns": Status.DNS, "dsq": Status.DSQ,
               "reinstate": Status.RUNNING}


class EngineInputError(ValueError):
    """Input the engine cannot apply: an unknown bib, device, checkpoint or command."""


class RaceEngine:
    """One race's state. See the module docstring for the API."""

    def __init__(self, race: Race, *, matcher: Matcher = matching.match) -> None:
        self.race = race
        self.course: Course = race.course
        self.curve = RecordCurve.from_race(race)
        self.layout = Layout.from_race(race, self.curve)
        self.entrants: dict[str, Entrant] = {e.bib: e for e in race.entrants}
        self.devices: dict[str, str] = {e.device: e.bib for e in race.entrants if e.device}
        self._with_device = set(self.devices.values())
        self.runners = {e.bib: RunnerState(e.bib, self.layout) for e in race.entrants}
        self.weather: set[str] = set()
        self.book = AlertBook()
        self.rules = Rules(race.id, race.course, race.thresholds,
                           tuple((c.id, race.start_ms + round(c.cutoff_s * 1000))
                                 for c in race.checkpoints if c.cutoff_s is not None),
                           race.danger_zones, {c.id: c.name for c in race.checkpoints})
        self._cutoff_ids = frozenset(cid for cid, _ in self.rules.cutoffs)
        self._match = matcher
        self._dirty: set[str] = set()
        # bib -> rank and gaps on the latest board() (cards show the board's own).
        self._ranking: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ input

    def runner(self, bib: str) -> RunnerState:
        """The state of ``bib``.

        Raises:
            EngineInputError: no entrant has this bib.
        """
        r = self.runners.get(bib)
        if r is None:
            raise EngineInputError(f"race {self.race.id} has no runner with bib {bib!r}")
        return r

    def on_fix(self, bib: str | None, fix: Fix, now_ms: int) -> list[dict[str, Any]]:
        """Take one fix (in any order, duplicates ignored). ``bib`` None: by fix.device.

        Raises:
            EngineInputError: unknown bib, or unknown device when ``bib`` is None.
        """
        if bib is None:
            bib = self.devices.get(fix.device)
            if bib is None:
                raise EngineInputError(f"device {fix.device!r} is not assigned to a runner of "
                                       f"race {self.race.id}; reassign it with race control")
        r = self.runners.get(bib) or self.runner(bib)
        near, behind, ahead = r.window(fix.t)
        m = self._match(self.course, fix.lat, fix.lon, near, behind_m=behind, ahead_m=ahead)
        changed = r.add_fix(fix.t, m.progress_m, m.off_m, fix.lat, fix.lon, fix.bat, fix.sos)
        if changed is None:
            return []
        if fix.t != r.f_t[-1]:  # a late fix: its neighbours' windows changed
            changed = self._rematch(r, fix.t, changed)
        self._dirty.add(bib)
        out: list[dict[str, Any]] = [{"kind": "runner", "race": self.race.id, "bib": bib,
                                      "t_ms": fix.t}]
        if changed:
            out += self._split_changes(r, changed)
        if fix.sos:
            out += self._alerts_for(r, now_ms)
        return out

    def _rematch(self, r: RunnerState, t: int, changed: list[str]) -> list[str]:
        """Re-match the fixes next to a late fix at ``t`` whose match is implausible
        beside it, walking outwards while matches change (at most REMATCH_MAX each way)."""
        out = list(changed)
        for later in (False, True):
            at = t
            for _ in range(REMATCH_MAX):
                cands = [c for c in r.suspects(at) if (c[0] > at) == later]
                if not cands:
                    break
                tj, lat, lon = cands[0]
                near, behind, ahead = r.window(tj)
                m = self._match(self.course, lat, lon, near, behind_m=behind, ahead_m=ahead)
                moved = r.update_fix(tj, m.progress_m, m.off_m)
                if moved is None:
                    break
                out += [c for c in moved if c not in out]
                at = tj
        return out

    def on_chip_read(self, read: ChipRead, now_ms: int) -> list[dict[str, Any]]:
        """Take a timing-mat read; it overrides the GPS estimate of that split, unless
        the speed it implies is implausible (``RunnerState.judge_chip``): then it is
        held, the split stays, and the ``implausible_chip_read`` alert is raised at once.

        Raises:
            EngineInputError: unknown bib or checkpoint.
        """
        return self._set_split(read.bib, read.checkpoint, read.t, CHIP, now_ms)

    def _set_split(self, bib: str, checkpoint: str, t: int, source: int,
                   now_ms: int) -> list[dict[str, Any]]:
        r = self.runner(bib)
        if checkpoint not in self.layout.index:
            raise EngineInputError(f"race {self.race.id} has no checkpoint {checkpoint!r}; "
                                   f"use one of {', '.join(self.layout.ids)}")
        if t < self.layout.start_ms:
            if self.layout.index[checkpoint] == 0:
                return []  # runners walk over the start mat before the gun
            raise EngineInputError(f"a split for {bib} at {checkpoint} is before the race start "
                                   f"({t} < {self.layout.start_ms}); check the reader's clock")
        held = r.held.get(checkpoint)
        if source == CHIP:
            changed = r.chip_read(checkpoint, t)
        else:
            changed = r.set_split(checkpoint, t, source)
        if changed:
            self._dirty.add(bib)
        out = self._split_changes(r, changed)
        if held is not r.held.get(checkpoint) or (held is not None and changed):
            out += self._alerts_for(r, now_ms)  # a read held, or one held resolved
        return out

    def _split_changes(self, r: RunnerState, changed: list[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for cid in changed:
            s = r.split(cid)
            out.append({"kind": "split", "race": self.race.id, "bib": r.bib, "checkpoint": cid,
                        "t_ms": None if s is None else s.t_ms,
                        "source": None if s is None else s.source})
        if r.refresh_status():
            out.append(self._status_change(r))
        return out

    def _status_change(self, r: RunnerState) -> dict[str, Any]:
        return {"kind": "status", "race": self.race.id, "bib": r.bib,
                "status": r.status.value, "reason": r.reason, "t_ms": r.status_ms}

    def on_control(self, cmd: dict[str, Any], now_ms: int) -> list[dict[str, Any]]:
        """Apply a race-control command (a dict with ``op``):

        * ``{"op": "dnf"|"dns"|"dsq", "bib", "reason"?}``; ``{"op": "reinstate", "bib"}``
        * ``{"op": "reassign", "device", "bib"}``: the device's fixes go to ``bib``
        * ``{"op": "ack", "alert_id"}``; ``{"op": "resolve_sos", "bib"}``
        * ``{"op": "weather", "zone", "on": bool}``
        * ``{"op": "manual_split", "bib", "checkpoint", "t_ms"}``

        Raises:
            EngineInputError: unknown op, missing or wrong-typed fields, unknown
                bib, checkpoint, zone or alert id.
        """
        if not isinstance(cmd, dict):
            raise EngineInputError(f"a control command is a JSON object, got {type(cmd).__name__}")
        op = cmd.get("op")
        if op in _STATUS_OPS:
            r = self.runner(_field(cmd, "bib", str))
            reason = cmd.get("reason", "")
            if not isinstance(reason, str):
                raise EngineInputError("control 'reason' must be a string")
            if not r.set_status(_STATUS_OPS[op], reason, now_ms):
                return []
            self._dirty.add(r.bib)
            return [self._status_change(r), *self._alerts_for(r, now_ms)]
        if op == "reassign":
            bib = self.runner(_field(cmd, "bib", str)).bib
            device = _field(cmd, "device", str)
            self.devices[device] = bib
            self._with_device = set(self.devices.values())
            return []
        if op == "ack":
            try:
                return self._alert_changes(self.book.acknowledge(_field(cmd, "alert_id", str)))
            except ValueError as e:
                raise EngineInputError(str(e)) from None
        if op == "resolve_sos":
            r = self.runner(_field(cmd, "bib", str))
            r.clear_sos()
            return self._alerts_for(r, now_ms)
        if op == "weather":
            zone = _field(cmd, "zone", str)
            if zone not in {z.id for z in self.race.danger_zones}:
                raise EngineInputError(f"race {self.race.id} has no danger zone {zone!r}")
            (self.weather.add if _field(cmd, "on", bool) else self.weather.discard)(zone)
            return self.tick(now_ms)
        if op == "manual_split":
            return self._set_split(_field(cmd, "bib", str), _field(cmd, "checkpoint", str),
                                   _field(cmd, "t_ms", int), MANUAL, now_ms)
        raise EngineInputError(f"unknown control op {op!r}; use one of dnf, dns, dsq, "
                               "reinstate, reassign, ack, resolve_sos, weather, manual_split")

    def set_race_settings(self, weather: Iterable[str], devices: dict[str, str]) -> None:
        """Take the race-wide settings race control changed elsewhere: the danger zones
        under a weather alert and the device -> bib assignments (the per-race stage
        applies ``weather`` and ``reassign`` and every worker's engine follows)."""
        self.weather = set(weather)
        self.devices = dict(devices)
        self._with_device = set(self.devices.values())

    # ----------------------------------------------------------------- alerts

    def tick(self, now_ms: int, bibs: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Evaluate every runner's alert rules at ``now_ms`` (only ``bibs``' when given,
        e.g. the runners one worker owns); returns the alert changes."""
        out: list[dict[str, Any]] = []
        runners = self.runners.values() if bibs is None else (self.runners[b] for b in bibs)
        for r in runners:
            out += self._alerts_for(r, now_ms)
        return out

    def evaluate(self, bib: str, now_ms: int) -> list[dict[str, Any]]:
        """Evaluate one runner's alert rules (e.g. after ``restore_runner``).

        Raises:
            EngineInputError: unknown bib.
        """
        return self._alerts_for(self.runner(bib), now_ms)

    def review(self, bib: str, t_lo: int, t_hi: int, now_ms: int) -> list[dict[str, Any]]:
        """After fixes between ``t_lo`` and ``t_hi`` arrived together: a stop or an
        excursion they hold that is over by the latest fix (race_engine.episodes) is
        raised and cleared at once; one still going is raised as usual. No episode, no
        evaluation: the common case costs a scan of the new fixes.

        Raises:
            EngineInputError: unknown bib.
        """
        r = self.runner(bib)
        past = episodes(r, self.rules, t_lo, t_hi)
        if not past:
            return []
        current = self._current(r, now_ms)
        known = {a.id for a in current} | self.book.ids(bib)
        over = [a for a in past if a.id not in known]
        changes = self.book.update(bib, current + over)
        if over:
            changes += self.book.update(bib, current)
        return self._alert_changes(changes)

    def _alerts_for(self, r: RunnerState, now_ms: int) -> list[dict[str, Any]]:
        return self._alert_changes(self.book.update(r.bib, self._current(r, now_ms)))

    def _current(self, r: RunnerState, now_ms: int) -> list[Alert]:
        # The cutoff rules read only the ETAs at checkpoints with a cutoff.
        etas = self.etas(r, now_ms, only=self._cutoff_ids) if self._cutoff_ids else []
        has_device = r.bib in self._with_device
        return evaluate(r, self.rules, now_ms, self.weather, etas, has_device)

    def _alert_changes(self, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for c in changes:
            c.update(kind="alert", race=self.race.id, bib=c["alert"]["bib"])
        return changes

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts, most urgent first (see race_engine.alerts for the order)."""
        return [a.to_dict() for a in self.book.sorted()]

    # ------------------------------------------------------------------ views

    def etas(self, r: RunnerState, now_ms: int, model: str = "record-ratio",
             only: frozenset[str] | None = None) -> list[Eta]:
        """Projected arrival at every checkpoint the runner has not reached yet (of
        ``only``, when given)."""
        x = r.progress_m
        targets = [(cid, m) for cid, m in zip(self.layout.ids, self.layout.m, strict=True)
                   if m > x and (only is None or cid in only)]
        return project(r, self.curve, targets, now_ms, self.course.length_m, model)

    def board(self, now_ms: int) -> dict[str, Any]:
        """The JSON-able standings at ``now_ms`` (race_engine.board)."""
        b = build_board(self.race.id, self.runners, self.entrants, self.curve, now_ms)
        self._ranking = {row["bib"]: {k: row[k] for k in RANKING}
                         for row in b["runners"] if row["rank"] is not None}
        return b

    def runner_view(self, bib: str, now_ms: int) -> dict[str, Any]:
        """A runner's public card: position (maybe estimated), splits, gaps, record pace,
        projections and last seen. Rank and gaps are those of the latest ``board`` call.

        Raises:
            EngineInputError: unknown bib.
        """
        r = self.runner(bib)
        start = self.layout.start_ms
        cur = r.current()
        delta = None
        if cur is not None and cur[1] > 0:
            delta = self.curve.delta_s((cur[0] - start) / 1000.0, cur[1])
        etas = self.etas(r, now_ms) if r.status is Status.RUNNING else []
        names = {c.id: c.name for c in self.race.checkpoints}
        return {
            "v": 1, "race": self.race.id, **self.entrants[bib].public(),
            "status": r.status.value, "reason": r.reason,
            "position": self._position(r, now_ms),
            "last_fix_ms": r.last_t,
            "last_seen_s": None if r.last_t is None else max(0.0, (now_ms - r.last_t) / 1000.0),
            "splits": [{"checkpoint": s.checkpoint, "name": names[s.checkpoint],
                        "km": round(self.layout.m[self.layout.index[s.checkpoint]] / 1000, 3),
                        "t_ms": s.t_ms, "elapsed_s": (s.t_ms - start) / 1000.0,
                        "source": s.source, "err_s": s.err_s} for s in r.splits()],
            **self._gaps(r),
            "record_delta_s": None if delta is None else round(delta, 1),
            "record_delta": None if delta is None else fmt_delta(delta),
            "reference": self.curve.name,
            "finish_eta": next((e.to_dict(start) for e in etas
                                if e.target == self.layout.ids[-1]), None),
            "etas": [e.to_dict(start) for e in etas[:NEXT_ETAS]],
            "cutoffs": self._cutoff_chances(r, now_ms, etas, names),
        }

    def _cutoff_chances(self, r: RunnerState, now_ms: int, etas: list[Eta],
                        names: dict[str, str]) -> list[dict[str, Any]]:
        """Each cutoff still ahead of a running runner (``etas``: its ETAs) with its
        chance of making it."""
        by_target = {e.target: e for e in etas}
        out = []
        for cid, cutoff_ms in self.rules.cutoffs:
            eta = by_target.get(cid)
            if eta is not None and r.split(cid) is None:
                p = 0.0 if now_ms > cutoff_ms else round(p_by(eta, cutoff_ms), 2)
                out.append({"checkpoint": cid, "name": names[cid], "cutoff_ms": cutoff_ms,
                            "p_make": p})
        return out

    def _gaps(self, r: RunnerState) -> dict[str, Any]:
        return self._ranking.get(r.bib, dict.fromkeys(RANKING))

    def _position(self, r: RunnerState, now_ms: int) -> dict[str, Any]:
        """Where the runner is: the latest fix, or moved forward at its pace (estimated)."""
        cur = r.current()
        if cur is None:
            lat, lon = self.course.position_at(0.0)
            return {"progress_m": 0.0, "lat": lat, "lon": lon, "estimated": r.last_t is None}
        t_cur, x = cur
        quiet = now_ms - t_cur
        if r.status is not Status.RUNNING or quiet <= ESTIMATE_AFTER_MS or x < MIN_PROGRESS_M:
            lat, lon = (r.last_lat, r.last_lon) if r.last_lat == r.last_lat else \
                self.course.position_at(x)
            return {"progress_m": round(x, 1), "lat": lat, "lon": lon, "estimated": False}
        d = moved_forward(r, self.curve, t_cur, x, now_ms)
        lat, lon = self.course.position_at(d)
        return {"progress_m": round(d, 1), "lat": lat, "lon": lon, "estimated": True}

    def touch(self, bib: str) -> None:
        """Mark ``bib``'s card changed, so the next ``take_dirty`` returns it."""
        self._dirty.add(self.runner(bib).bib)

    def take_dirty(self) -> set[str]:
        """Bibs whose card changed since the previous call (for coalesced publishing)."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def standings_order(self) -> list[RunnerState]:
        """All runners in board order (computed now)."""
        return ranked(self.runners)

    # --------------------------------------------------------------- snapshot

    def runner_state(self, bib: str) -> dict[str, Any]:
        """A JSON-able snapshot of one runner (``restore_runner`` takes it back)."""
        return self.runner(bib).to_dict()

    def reset_runner(self, bib: str) -> None:
        """Forget everything about ``bib`` (as at the start of the race).

        Raises:
            EngineInputError: unknown bib.
        """
        self.runners[self.runner(bib).bib] = RunnerState(bib, self.layout)
        self._dirty.add(bib)

    def restore_runner(self, state: dict[str, Any]) -> None:
        """Replace a runner's state with a snapshot from ``runner_state``.

        Raises:
            EngineInputError: malformed snapshot or a bib not in this race.
        """
        try:
            r = RunnerState.from_dict(state, self.layout)
        except ValueError as e:
            raise EngineInputError(str(e)) from None
        self.runner(r.bib)
        self.runners[r.bib] = r
        self._dirty.add(r.bib)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot of the whole engine (runners, devices, weather, alerts)."""
        return {"v": 1, "race": self.race.id,
                "runners": {b: r.to_dict() for b, r in self.runners.items()},
                "devices": dict(self.devices), "weather": sorted(self.weather),
                "acknowledged": sorted(a.id for a in self.book.active.values()
                                       if a.acknowledged)}

    @classmethod
    def from_dict(cls, race: Race, d: dict[str, Any], now_ms: int) -> RaceEngine:
        """Rebuild an engine from ``to_dict``; alerts are re-evaluated at ``now_ms``.

        Raises:
            EngineInputError: the snapshot is malformed or for another race.
        """
        if not isinstance(d, dict) or d.get("v") != 1 or d.get("race") != race.id:
            raise EngineInputError(f"not a version 1 engine snapshot of race {race.id}")
        e = cls(race)
        for state in d["runners"].values():
            e.restore_runner(state)
        e.devices = dict(d["devices"])
        e._with_device = set(e.devices.values())
        e.weather = set(d["weather"])
        e.tick(now_ms)
        for aid in d["acknowledged"]:
            if aid in e.book.active:
                e.book.acknowledge(aid)
        e._dirty.clear()
        return e


def _field(cmd: dict[str, Any], key: str, kind: type) -> Any:
    v = cmd.get(key)
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise EngineInputError(f"control op {cmd.get('op')!r} needs {key!r} as a "
                               f"{kind.__name__}, got {v!r}")
    return v
