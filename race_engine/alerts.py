"""Alert rules: pure functions of a runner's state and ``now_ms``, and the book of alerts.

Kinds, most urgent first (race control's list is sorted by this order, then by raise
time); ``SEVERITY`` gives each kind's level:

1. ``sos`` (critical): the device sent an SOS; stays until race control resolves it.
2. ``stopped`` (high): fixes keep arriving but have not advanced ``STOPPED_MOVE_M``
   over ``stopped_min`` minutes (injured? lost?).
3. ``danger_zone`` (high): inside a danger zone while a weather alert is on for it.
4. ``off_course`` (high): every fix for ``off_course_s`` seconds is more than
   ``off_course_m`` from the course.
5. ``no_fix`` (medium): no fix for ``no_fix_min`` minutes.
6. ``missed_cutoff`` (medium): reached a checkpoint after its cutoff, or the cutoff
   passed without a split (only the first such checkpoint).
7. ``cutoff_risk`` (low): the runner misses the next cutoff (taken
   ``cutoff_risk_margin_min`` later) with a probability of at least
   ``cutoff_risk_p_miss`` (0.9: the projection's optimistic edge, p10, is past it), read
   off the projection's band (``projections.p_by``); the message says how likely.
8. ``low_battery`` (low): the latest fix reports a battery below ``low_battery``.
9. ``implausible_chip_read`` (low): a chip read was held, not applied, because of the
   speed it implies (``RunnerState.judge_chip``); the GPS split stays. It lasts until
   race control enters a manual split at that checkpoint (or a plausible read of it
   is applied); it is about the results, not the runner's safety.

Only ``sos`` and ``implausible_chip_read`` apply to runners who are not running
(finished, DNF, DSQ, DNS); the others clear when the runner stops, finishes or is taken
out of the race. Ids are stable: ``race:bib:kind`` plus ``:checkpoint`` or ``:zone`` for
cutoffs, held chip reads and zones. An alert's ``raised_ms`` comes from the data (e.g.
last fix + no_fix_min, a held read's own time), not from when it was noticed, so live
processing and a replay raise the same alerts at the same times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from race_engine.course import Course
from race_engine.model import AlertThresholds, DangerZone, Status
from race_engine.projections import Eta, p_by
from race_engine.runner import HeldRead, RunnerState

ORDER = ("sos", "stopped", "danger_zone", "off_course", "no_fix", "missed_cutoff",
         "cutoff_risk", "low_battery", "implausible_chip_read")
SEVERITY = {"sos": "critical", "stopped": "high", "danger_zone": "high", "off_course": "high",
            "no_fix": "medium", "missed_cutoff": "medium", "cutoff_risk": "low",
            "low_battery": "low", "implausible_chip_read": "low"}
_RANK = {k: n for n, k in enumerate(ORDER)}
STOPPED_MOVE_M = 50.0
MIN_MS = 60_000


@dataclass(frozen=True, slots=True)
class Alert:
    """One active alert. ``subject`` is the checkpoint or zone id when the kind has one."""

    id: str
    kind: str
    severity: str
    race: str
    bib: str
    subject: str | None
    progress_m: float
    lat: float | None
    lon: float | None
    raised_ms: int
    message: str
    acknowledged: bool = False

    def sort_key(self) -> tuple[int, int, str]:
        return _RANK[self.kind], self.raised_ms, self.id

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "severity": self.severity,
                "race": self.race, "bib": self.bib, "subject": self.subject,
                "progress_m": round(self.progress_m, 1), "lat": self.lat, "lon": self.lon,
                "raised_ms": self.raised_ms, "message": self.message,
                "acknowledged": self.acknowledged}


@dataclass(frozen=True)
class Rules:
    """What the rules need to know about the race besides the runner."""

    race: str
    course: Course
    thresholds: AlertThresholds
    cutoffs: tuple[tuple[str, int], ...]  # (checkpoint id, cutoff epoch ms), course order
    zones: tuple[DangerZone, ...]
    names: Mapping[str, str] = field(default_factory=dict)  # checkpoint id -> name


def evaluate(r: RunnerState, rules: Rules, now_ms: int, weather: Iterable[str] = (),
             etas: Sequence[Eta] = (), has_device: bool = True) -> list[Alert]:
    """The alerts whose condition holds for runner ``r`` at ``now_ms``."""
    found: list[tuple[str, str | None, int, str]] = []  # kind, subject, since, message
    if r.sos_ms is not None:
        found.append(("sos", None, r.sos_ms, "SOS from the runner's device"))
    start = r.layout.start_ms
    if r.status is Status.RUNNING and now_ms >= start:
        found += _running(r, rules, now_ms, set(weather), etas, has_device)
    out: list[Alert] = []
    if found:
        x = r.progress_m
        if r.last_t is not None and r.last_lat == r.last_lat:
            lat, lon = r.last_lat, r.last_lon
        else:
            lat, lon = rules.course.position_at(x)
        out = make_alerts(rules, r.bib, found, x, lat, lon)
    if r.held:
        out += _held_reads(r, rules)
    return out


def _held_reads(r: RunnerState, rules: Rules) -> list[Alert]:
    """The ``implausible_chip_read`` alerts of ``r``, each at its checkpoint: one per
    held read whose checkpoint has neither an applied chip read nor a manual split."""
    out = []
    for cid, h in r.held.items():
        if cid in r.chip or cid in r.manual:
            continue
        x = r.layout.m[r.layout.index[cid]]
        lat, lon = rules.course.position_at(x)
        out += make_alerts(rules, r.bib, [("implausible_chip_read", cid, h.t_ms,
                                           held_message(r, rules, h))], x, lat, lon)
    return out


def held_message(r: RunnerState, rules: Rules, h: HeldRead) -> str:
    """What race control reads about a held chip read: the checkpoint, the read time,
    the implied speed, and how to accept it."""
    def name(cid: str) -> str:
        return f"{rules.names.get(cid, cid)} ({cid})"

    s = round((h.t_ms - r.layout.start_ms) / 1000)
    clock = f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    other = "the start" if h.against is None else f"the split at {name(h.against)}"
    if h.speed_mps is None:
        why = f"comes {'after' if h.after else 'before'} {other}"
    else:
        why = f"implies {h.speed_mps:.1f} m/s {'to' if h.after else 'from'} {other}"
    command = (f'{{"op": "manual_split", "bib": "{r.bib}", "checkpoint": "{h.checkpoint}", '
               f'"t_ms": {h.t_ms}}}')
    return (f"chip read at {name(h.checkpoint)} at race time {clock} (t_ms {h.t_ms}) {why}; "
            f"at most {h.max_mps:.1f} m/s is plausible there. The read is held, not "
            f"applied: the split stays the GPS estimate. To accept the read, enter it as a "
            f"manual split: {command}")


def make_alerts(rules: Rules, bib: str, found: Iterable[tuple[str, str | None, int, str]],
                x: float, lat: float, lon: float) -> list[Alert]:
    """Alerts of runner ``bib`` at progress ``x`` and ``lat``/``lon`` from
    ``(kind, subject, raised_ms, message)``."""
    out = []
    for kind, subject, since, message in found:
        aid = f"{rules.race}:{bib}:{kind}" + (f":{subject}" if subject else "")
        out.append(Alert(aid, kind, SEVERITY[kind], rules.race, bib, subject, x, lat, lon,
                         since, message))
    return out


def _running(r: RunnerState, rules: Rules, now_ms: int, weather: set[str],
             etas: Sequence[Eta], has_device: bool) -> list[tuple[str, str | None, int, str]]:
    th = rules.thresholds
    found: list[tuple[str, str | None, int, str]] = []
    start = r.layout.start_ms
    x = r.progress_m
    if has_device or r.last_t is not None:
        seen = max(r.last_t or start, start)
        if now_ms - seen >= th.no_fix_min * MIN_MS:
            found.append(("no_fix", None, int(seen + th.no_fix_min * MIN_MS),
                          f"no fix for {(now_ms - seen) / MIN_MS:.0f} min"))
    cur = r.current()
    fresh = r.last_t is not None and now_ms - r.last_t < th.no_fix_min * MIN_MS
    if cur is not None and fresh and x < r.layout.m[-1]:
        # An observed (not interpolated) time: sparse fixes are no evidence of a stop.
        since = r.observed_at(x - STOPPED_MOVE_M)
        if since is not None and r.last_t is not None and \
                r.last_t - since >= th.stopped_min * MIN_MS:
            found.append(("stopped", None, int(since + th.stopped_min * MIN_MS),
                          f"no progress for {(r.last_t - since) / MIN_MS:.0f} min at "
                          f"km {x / 1000:.1f}"))
    off_since = r.off_streak_ms(th.off_course_m)
    if off_since is not None and r.last_t is not None and \
            r.last_t - off_since >= th.off_course_s * 1000:
        found.append(("off_course", None, int(off_since + th.off_course_s * 1000),
                      f"{r.last_off:.0f} m off the course"))
    if r.last_bat is not None and r.last_bat < th.low_battery and r.last_t is not None:
        found.append(("low_battery", None, r.last_t, f"battery {r.last_bat:.0%}"))
    found += _cutoffs(r, rules, now_ms, etas)
    for z in rules.zones:
        if z.id in weather and z.contains(x):
            entered = r.time_at(z.km_from * 1000.0)
            found.append(("danger_zone", z.id, int(entered if entered is not None else now_ms),
                          f"in {z.name} during a weather alert"))
    return found


def miss_chance(p: float) -> str:
    """A probability as a person reads it: "93%", "over 99%"."""
    return "over 99%" if p > 0.99 else f"{p:.0%}"


def _cutoffs(r: RunnerState, rules: Rules, now_ms: int,
             etas: Sequence[Eta]) -> list[tuple[str, str | None, int, str]]:
    margin = rules.thresholds.cutoff_risk_margin_min * MIN_MS
    by_target = {e.target: e for e in etas}
    for cid, cutoff_ms in rules.cutoffs:
        s = r.split(cid)
        if s is not None and s.t_ms <= cutoff_ms:
            continue
        if s is not None or now_ms > cutoff_ms:
            return [("missed_cutoff", cid, cutoff_ms, f"missed the cutoff at {cid}")]
        eta = by_target.get(cid)
        if eta is None:
            return []
        p_miss = 1.0 - p_by(eta, cutoff_ms + margin)
        if p_miss >= rules.thresholds.cutoff_risk_p_miss:
            late = (eta.t_ms - cutoff_ms) / MIN_MS
            return [("cutoff_risk", cid, now_ms, f"{miss_chance(p_miss)} likely to miss the "
                     f"cutoff at {cid} (projected {late:.0f} min after it)")]
        return []
    return []


class AlertBook:
    """The active alerts of one race: raise, clear and acknowledge, with change records.

    A change is ``{"action": "raised"|"cleared"|"acknowledged", "alert": {...}}``.
    """

    def __init__(self) -> None:
        self.active: dict[str, Alert] = {}
        self._by_bib: dict[str, set[str]] = {}

    def update(self, bib: str, current: list[Alert]) -> list[dict[str, Any]]:
        """Replace ``bib``'s alerts with ``current``: new ids are raised, missing ones
        cleared; ongoing ones keep their raise time and acknowledgement."""
        changes = []
        ids = {a.id for a in current}
        for aid in sorted(self._by_bib.get(bib, set()) - ids):
            gone = self.active.pop(aid)
            changes.append({"action": "cleared", "alert": gone.to_dict()})
        for a in current:
            old = self.active.get(a.id)
            if old is None:
                self.active[a.id] = a
                changes.append({"action": "raised", "alert": a.to_dict()})
            else:
                self.active[a.id] = replace(a, raised_ms=old.raised_ms,
                                            acknowledged=old.acknowledged)
        if ids:
            self._by_bib[bib] = ids
        else:
            self._by_bib.pop(bib, None)
        return changes

    def ids(self, bib: str) -> set[str]:
        """The ids of ``bib``'s active alerts."""
        return set(self._by_bib.get(bib, ()))

    def of(self, bib: str) -> list[dict[str, Any]]:
        """``bib``'s active alerts as ``Alert.to_dict`` writes them (to save them)."""
        return [self.active[aid].to_dict() for aid in sorted(self._by_bib.get(bib, ()))]

    def forget(self, bib: str) -> None:
        """Drop ``bib``'s alerts without change records (its state is being replaced)."""
        for aid in self._by_bib.pop(bib, set()):
            self.active.pop(aid, None)

    def restore(self, alerts: Iterable[dict[str, Any]]) -> None:
        """Put back active alerts saved with ``Alert.to_dict`` (after a restart), so their
        raise times and acknowledgements survive; ``update`` then clears what has ended.

        Raises:
            ValueError: an entry is not an alert as ``Alert.to_dict`` writes it.
        """
        for d in alerts:
            try:
                a = Alert(**d)
            except TypeError as e:
                raise ValueError(f"not a saved alert: {e}") from None
            self.active[a.id] = a
            self._by_bib.setdefault(a.bib, set()).add(a.id)

    def acknowledge(self, alert_id: str) -> list[dict[str, Any]]:
        """Mark an active alert acknowledged (it stays until its condition ends).

        Raises:
            ValueError: no active alert has this id.
        """
        a = self.active.get(alert_id)
        if a is None:
            raise ValueError(f"no active alert {alert_id!r}; it may have cleared already")
        if a.acknowledged:
            return []
        self.active[alert_id] = replace(a, acknowledged=True)
        return [{"action": "acknowledged", "alert": self.active[alert_id].to_dict()}]

    def sorted(self) -> list[Alert]:
        """Active alerts, most urgent first."""
        return sorted(self.active.values(), key=Alert.sort_key)
