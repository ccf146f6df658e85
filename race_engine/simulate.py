"""A simulated field: runners' true motion, their trackers' fixes, and the truth.

``simulate(race, rng, options)`` is pure: a race, a seeded ``numpy.random.Generator``
and options in, a ``Simulation`` out (fixes in arrival order, true checkpoint crossings,
each runner's outcome). The same inputs always give the same values. docs/simulation.md
describes the model and how each realism knob was chosen.

Runner motion is a piecewise-linear "progress against time" curve per runner (knots of
seconds from the start and metres along the course); trackers sample it, add GPS noise,
drop, buffer and flush fixes. Pace follows the gradient (Minetti's cost of running
uphill, a capped speed-up downhill), fatigue, danger zones, weather and aid stops.

Options that change the field (``checkpoint_stop_s``, ``tracker_off_at_finish``,
``checkpoint_detours``) are off by default, and an option that is off draws no random
numbers: a seed gives the same field with or without them in the code.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from race_engine.course import EARTH_RADIUS_M, Course
from race_engine.model import Entrant, Fix, Race

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

WEATHERS = ("good", "bad")
GRID_M = 20.0  # pacing resolution along the course
WALK_MPS = 1.1  # a runner walking back to an aid station after dropping out
# Finish time as a multiple of the reference (record) time, by percentile in the field:
# the winner of a 500-runner field lands 3-6% above the record, the median near 1.6x.
_FIELD_U = np.array([0.0, 0.002, 0.02, 0.10, 0.50, 0.90, 0.98, 1.0])
_FIELD_F = np.array([1.00, 1.04, 1.20, 1.36, 1.64, 1.88, 2.02, 2.20])
# Without a record: record-level seconds per effort-km (1 km flat or 100 m of climb),
# fitted on Zegama's record (3:36:40 over 42.2 km and 2,736 m = 69.6 effort-km).
RECORD_S_PER_EFFORT_KM = 187.0
_ZONE_SLOWDOWN = {"good": 1.10, "bad": 1.35}  # rock and exposure on a ridge
_WEATHER_SLOWDOWN = {"good": 1.0, "bad": 1.08}
_DROPOUT_RATE = {"good": 0.04, "bad": 0.15}
_BATTERY_DEATH_RATE = 0.01
_DROPOUT_REASONS = {"good": ("injury", "exhaustion", "stomach problems"),
                    "bad": ("hypothermia", "hypothermia", "exhaustion", "injury")}
MAX_STOP_S = 3600.0
# A detour near a checkpoint (a toilet, an aid tent off the path): the runner leaves the
# course this far either side of the checkpoint, walks this far off it and back at
# DETOUR_WALK_MPS, and stays there a while.
DETOUR_NEAR_M = 150.0
DETOUR_OFF_M = (30.0, 80.0)
DETOUR_STAY_S = (20.0, 60.0)
DETOUR_WALK_MPS = 1.5


@dataclass(frozen=True, slots=True)
class SimOptions:
    """What to simulate. Raises ValueError from the constructor on an impossible value.

    ``checkpoint_stop_s`` (lo, hi): every runner stands still a uniform time in [lo, hi]
    seconds at each intermediate checkpoint, instead of the default aid-station stop that
    depends on ability; (0, 0), the default, keeps that stop. ``tracker_off_at_finish``:
    a finisher's tracker sends nothing after the finish crossing. ``checkpoint_detours``:
    the probability, per runner and intermediate checkpoint, of a detour off the course
    near the checkpoint (DETOUR_* constants).
    """

    runners: int
    interval_s: float = 10.0
    noise_m: float = 10.0
    loss: float = 0.05
    incidents: bool = True
    weather: str = "good"
    checkpoint_stop_s: tuple[float, float] = (0.0, 0.0)
    tracker_off_at_finish: bool = False
    checkpoint_detours: float = 0.0

    def __post_init__(self) -> None:
        if self.runners < 1:
            raise ValueError(f"runners must be at least 1, got {self.runners}")
        if not 1.0 <= self.interval_s <= 3600.0:
            raise ValueError(f"interval must be 1..3600 s, got {self.interval_s}")
        if not 0.0 <= self.noise_m <= 1000.0:
            raise ValueError(f"noise must be 0..1000 m, got {self.noise_m}")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"loss must be a fraction in [0, 1), got {self.loss}")
        if self.weather not in WEATHERS:
            raise ValueError(f"weather must be one of {', '.join(WEATHERS)}, got {self.weather!r}")
        stop = tuple(self.checkpoint_stop_s)
        if len(stop) != 2 or not 0.0 <= stop[0] <= stop[1] <= MAX_STOP_S:
            raise ValueError(f"checkpoint stop must be (lo, hi) seconds with 0 <= lo <= hi <= "
                             f"{MAX_STOP_S:g}, got {self.checkpoint_stop_s!r}")
        if not 0.0 <= self.checkpoint_detours <= 1.0:
            raise ValueError("checkpoint detours must be a probability in [0, 1], "
                             f"got {self.checkpoint_detours}")

    @property
    def stops_set(self) -> bool:
        """Whether ``checkpoint_stop_s`` replaces the default aid-station stops."""
        return tuple(self.checkpoint_stop_s) != (0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Crossing:
    """The true moment (epoch ms) a runner first reached a checkpoint's distance."""

    bib: str
    checkpoint: str
    t: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a runner's race ended and what happened to them and their tracker.

    ``status`` is "finished" or "dnf"; ``km`` is where they stopped moving forward;
    ``tracking`` is the (first, last) fix time generated by the tracker (epoch ms), or
    None for an entrant without a device. ``ability`` is the runner's percentile in the
    field (0 runs at record level, 1 is the slowest).
    """

    bib: str
    device: str
    status: str
    km: float
    reason: str
    finish: int | None
    incidents: tuple[str, ...]
    tracking: tuple[int, int] | None
    ability: float


@dataclass(frozen=True, eq=False)
class Simulation:
    """The simulated field. Fix columns are numpy arrays in arrival order.

    ``device_ids[dev[i]]`` is fix i's device; ``arrival`` is when it reaches ingest
    (epoch ms); ``generated`` counts fixes the trackers produced, delivered or not.
    """

    device_ids: tuple[str, ...]
    dev: IntArray
    t: IntArray
    arrival: IntArray
    lat: Array
    lon: Array
    ele: Array
    acc: Array
    bat: Array
    sos: npt.NDArray[np.bool_]
    crossings: list[Crossing]
    outcomes: list[Outcome]
    holes: list[tuple[float, float]]
    generated: int
    incidents: dict[str, str] = field(default_factory=dict)  # kind -> bib

    def pings(self) -> Iterator[tuple[Fix, int]]:
        """Each delivered fix with its arrival time (epoch ms), in arrival order."""
        cols = (self.dev.tolist(), self.t.tolist(), self.arrival.tolist(), self.lat.tolist(),
                self.lon.tolist(), self.ele.tolist(), self.acc.tolist(), self.bat.tolist(),
                self.sos.tolist())
        ids = self.device_ids
        for d, t, a, la, lo, el, ac, ba, so in zip(*cols, strict=True):
            yield Fix(ids[d], t, la, lo, el, ac, ba, so), a


def simulate(race: Race, rng: np.random.Generator, options: SimOptions) -> Simulation:
    """Simulate the first ``options.runners`` entrants of ``race``.

    Raises:
        ValueError: more runners asked for than the race has entrants.
    """
    n = options.runners
    if n > len(race.entrants):
        raise ValueError(f"{race.id} has {len(race.entrants)} entrants, cannot simulate {n}: "
                         "add entrants to entrants.csv or ask for fewer runners")
    entrants = race.entrants[:n]
    grid = _Grid.build(race, options.weather)
    pct = rng.random(n)  # each runner's percentile in the field
    targets = finish_targets(pct, reference_time_s(race)) * _WEATHER_SLOWDOWN[options.weather]
    stop_s = options.checkpoint_stop_s if options.stops_set else None
    kt_all = _base_times(grid, rng, pct, targets, stop_s)
    roles = _assign_roles(rng, pct, options)
    holes = coverage_holes(race, rng)
    crossings: list[Crossing] = []
    outcomes: list[Outcome] = []
    columns: list[dict[str, npt.NDArray[np.generic]]] = []
    incidents: dict[str, str] = {}
    for i, e in enumerate(entrants):
        plan = _plan_runner(race, grid, rng, kt_all[i], roles.get(i, ""), options)
        for cp, t_s in plan.crossings:
            crossings.append(Crossing(e.bib, cp, race.start_ms + round(t_s * 1000)))
        for kind in plan.incidents:
            incidents.setdefault(kind, e.bib)
        tracking: tuple[int, int] | None = None
        if e.device:
            cols = _track(race.course, plan, rng, options, holes, len(columns))
            first, last = (race.start_ms + int(v) for v in cols["span"])
            tracking = (first, last)
            columns.append(cols)
            if plan.battery_dead:
                plan.incidents.append("battery")
                incidents.setdefault("battery", e.bib)
        finish = race.start_ms + round(plan.finish_s * 1000) if plan.finish_s else None
        outcomes.append(Outcome(e.bib, e.device, plan.status, round(plan.p_end / 1000, 3),
                                plan.reason, finish, tuple(plan.incidents), tracking,
                                float(pct[i])))
    return _assemble(race, entrants, columns, crossings, outcomes, holes, incidents)


def reference_time_s(race: Race) -> float:
    """The record finish time in seconds, or an estimate from the course's length and climb."""
    finish_id = race.checkpoints[-1].id
    for split in race.record:
        if split.checkpoint == finish_id:
            return split.t_s
    climb, _ = race.course.total_climb()
    return (race.course.length_m / 1000.0 + climb / 100.0) * RECORD_S_PER_EFFORT_KM


def finish_targets(pct: Array, reference_s: float) -> Array:
    """Finish times (s) of runners at field percentiles ``pct`` (0 = record level)."""
    return np.asarray(reference_s * np.exp(np.interp(pct, _FIELD_U, np.log(_FIELD_F))))


def speed_factor(grade: Array) -> Array:
    """Running speed on a slope relative to the flat, at the same effort.

    Uphill: inverse of Minetti et al. (2002)'s energy cost of running. Downhill the cost
    model would make a -20% slope twice as fast as the flat, which footing forbids: speed
    peaks at +20% near -8% and falls off on steeper descents.
    """
    g = np.clip(grade, -0.45, 0.45)
    up = np.maximum(g, 0.0)
    cost = ((((155.4 * up - 30.4) * up - 43.3) * up + 46.3) * up + 19.5) * up + 3.6
    d = np.maximum(-g, 0.0)
    down = np.where(d <= 0.08, 1.0 + 2.5 * d, 1.2 * np.exp(-2.2 * (d - 0.08)))
    return np.asarray(np.where(g >= 0, 3.6 / cost, down))


@dataclass(frozen=True, eq=False)
class _Grid:
    """Knots along the course shared by all runners.

    Each intermediate checkpoint appears twice in ``m`` (arrival, departure): the
    zero-length segment between them is the aid-station stop.
    """

    m: Array
    ds: Array
    pace: Array  # relative pace per segment from terrain and danger zones
    dwell: IntArray  # segment index of each intermediate checkpoint's stop
    cp_m: Array  # each checkpoint's distance, clamped to the course
    length: float

    @classmethod
    def build(cls, race: Race, weather: str) -> _Grid:
        course = race.course
        length = course.length_m
        cp_m = np.array([min(cp.m, length) for cp in race.checkpoints])
        base = np.unique(np.concatenate([np.arange(0.0, length, GRID_M), cp_m, [length]]))
        idx = np.searchsorted(base, cp_m[1:-1])
        m = np.insert(base, idx, base[idx])
        ds = np.diff(m)
        grade = np.divide(np.diff(_smoothed_elevation(course, m)), ds,
                          out=np.zeros_like(ds), where=ds > 0)
        mid = (m[:-1] + m[1:]) / 2
        zone = np.ones_like(ds)
        for z in race.danger_zones:
            zone[(mid >= z.km_from * 1000) & (mid <= z.km_to * 1000)] = _ZONE_SLOWDOWN[weather]
        dwell = (idx + np.arange(idx.size)).astype(np.int64)
        return cls(m, ds, zone / speed_factor(grade), dwell, cp_m, length)


def _smoothed_elevation(course: Course, at: Array) -> Array:
    """Course elevation at ``at``, smoothed over ~50 m so point jitter is not a slope."""
    d, e = course.profile(10.0)
    half = 15
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / 5.0) ** 2)
    smooth = np.convolve(np.pad(e, half, mode="edge"), kernel / kernel.sum(), mode="valid")
    return np.interp(at, d, smooth)


def _base_times(grid: _Grid, rng: np.random.Generator, pct: Array, targets: Array,
                stop_s: tuple[float, float] | None) -> Array:
    """Seconds from the start at which each runner (row) reaches each knot (column).

    ``stop_s`` (lo, hi) replaces the ability-dependent aid-station stop; the same numbers
    are drawn either way, so the rest of the field does not change with it.
    """
    n, segs = pct.size, grid.ds.size
    # Fatigue grows over the race, more for the back of the field.
    phi = np.clip(0.06 + 0.40 * pct + rng.normal(0.0, 0.03, n), 0.0, None)
    x = ((grid.m[:-1] + grid.m[1:]) / 2) / grid.length
    shape = grid.pace[None, :] * (1.0 + phi[:, None] * x[None, :] ** 2)
    # Pace wobbles around the plan (AR(1), ~1 km correlation), so runners trade places.
    rho = math.exp(-GRID_M / 1000.0)
    shocks = rng.normal(0.0, 0.05 * math.sqrt(1 - rho * rho), (segs, n))
    wobble = np.empty((segs, n))
    wobble[0] = rng.normal(0.0, 0.05, n)
    for k in range(1, segs):
        wobble[k] = rho * wobble[k - 1] + shocks[k]
    moving = grid.ds[None, :] * shape * np.exp(wobble.T)
    if stop_s is None:
        lo = 5.0 + 25.0 * np.minimum(pct * 5.0, 1.0)  # elites barely stop; others 30 s - 3 min
        hi = 30.0 + 150.0 * np.sqrt(pct)
    else:
        lo, hi = np.full(n, stop_s[0]), np.full(n, stop_s[1])
    stops = rng.uniform(lo[:, None], hi[:, None], (n, grid.dwell.size))
    dt = moving * ((targets - stops.sum(axis=1)) / moving.sum(axis=1))[:, None]
    dt[:, grid.dwell] = stops
    start_delay = 40.0 * pct + rng.uniform(0.0, 5.0, n)  # the back of the pen crosses later
    return np.concatenate([start_delay[:, None], start_delay[:, None] + np.cumsum(dt, 1)], 1)


def _assign_roles(rng: np.random.Generator, pct: Array, options: SimOptions) -> dict[int, str]:
    """Runner index -> what happens to them (incidents, dropouts, weak batteries)."""
    n = pct.size
    taken = np.zeros(n, dtype=bool)
    roles: dict[int, str] = {}

    def pick(role: str, lo: float, hi: float) -> None:
        pool = np.flatnonzero((pct >= lo) & (pct <= hi) & ~taken)
        if pool.size == 0:
            pool = np.flatnonzero(~taken)
        if pool.size:
            i = int(rng.choice(pool))
            taken[i] = True
            roles[i] = role

    if options.incidents:
        pick("sos", 0.3, 0.7)
        pick("off_course", 0.1, 0.6)
        pick("stop", 0.2, 0.8)
    for role, rate in (("dropout", _DROPOUT_RATE[options.weather]),
                       ("battery", _BATTERY_DEATH_RATE)):
        for _ in range(max(round(rate * n), 1 if n >= 10 else 0)):
            pick(role, 0.0, 1.0)
    return roles


def coverage_holes(race: Race, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Stretches (from_m, to_m) without GSM coverage: valleys, one per ~14 km.

    Kept 2 km from the start and finish and 500 m from danger zones (a ridge has signal).
    """
    course = race.course
    length = course.length_m
    if length < 5000.0:
        return []
    d, e = course.profile(100.0)
    box = np.ones(31) / 31
    local_mean = np.convolve(np.pad(e, 15, mode="edge"), box, mode="valid")
    allowed = (e < local_mean) & (d > 2000.0) & (d < length - 2000.0)
    for z in race.danger_zones:
        allowed &= (d < z.km_from * 1000 - 500) | (d > z.km_to * 1000 + 500)
    holes: list[tuple[float, float]] = []
    for _ in range(max(1, round(length / 14000.0))):
        candidates = d[allowed]
        if candidates.size == 0:
            break
        centre, size = float(rng.choice(candidates)), float(rng.uniform(600.0, 1500.0))
        holes.append((max(centre - size / 2, 0.0), min(centre + size / 2, length)))
        allowed &= np.abs(d - centre) > 3000.0
    return sorted(holes)


@dataclass(eq=False)
class _Plan:
    """One runner's true motion (knots: seconds from the start, metres) and its ending."""

    kt: Array
    kp: Array
    crossings: list[tuple[str, float]]
    status: str
    reason: str
    p_end: float
    finish_s: float | None
    end_s: float  # when the tracker is switched off or taken away
    weak_battery: bool
    sos_from: float = math.inf
    excursion: tuple[float, float, float, float] | None = None  # t, duration, heading, metres
    detours: list[_Detour] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    battery_dead: bool = False


@dataclass(frozen=True, slots=True)
class _Detour:
    """A runner off the course and back: leaves it at ``p`` (m) at ``t`` (s from the
    start), walks ``metres`` away on ``heading`` (radians from east) in ``walk_s``, stays
    ``stay_s``, walks back. Progress along the course is paused meanwhile."""

    p: float
    t: float
    walk_s: float
    stay_s: float
    heading: float
    metres: float

    @property
    def seconds(self) -> float:
        return 2 * self.walk_s + self.stay_s

    def offset(self, t: npt.ArrayLike) -> tuple[Array, Array]:
        """(east, north) metres from the course at times ``t`` (zero outside the detour)."""
        knots = [self.t, self.t + self.walk_s, self.t + self.walk_s + self.stay_s,
                 self.t + self.seconds]
        out = self.metres * np.interp(np.asarray(t, dtype=np.float64), knots,
                                      [0.0, 1.0, 1.0, 0.0])
        return out * math.cos(self.heading), out * math.sin(self.heading)


def _first_time_at(kt: Array, kp: Array, m: Array) -> Array:
    """The first time progress reaches each of ``m`` (kp must be non-decreasing)."""
    k = np.clip(np.searchsorted(kp, m, side="left"), 1, kp.size - 1)
    p0, p1 = kp[k - 1], kp[k]
    frac = np.divide(m - p0, p1 - p0, out=np.ones_like(m), where=p1 > p0)
    return np.asarray(kt[k - 1] + np.clip(frac, 0.0, 1.0) * (kt[k] - kt[k - 1]))


def _pause(kt: Array, kp: Array, p: float, seconds: float) -> tuple[Array, Array]:
    """The motion with a stop of ``seconds`` on reaching ``p``."""
    t = float(_first_time_at(kt, kp, np.array([p]))[0])
    k = int(np.searchsorted(kp, p, side="left"))
    return (np.concatenate([kt[:k], [t, t + seconds], kt[k:] + seconds]),
            np.concatenate([kp[:k], [p, p], kp[k:]]))


def _pause_plan(plan: _Plan, p: float, seconds: float) -> float:
    """Pause the plan's motion ``seconds`` on reaching ``p``; detours after it move with
    it. Returns the time the runner reaches ``p``."""
    t = float(_first_time_at(plan.kt, plan.kp, np.array([p]))[0])
    plan.kt, plan.kp = _pause(plan.kt, plan.kp, p, seconds)
    plan.detours = [replace(d, t=d.t + seconds) if d.t >= t else d for d in plan.detours]
    return t


def _add_detours(plan: _Plan, course: Course, grid: _Grid, rng: np.random.Generator,
                 rate: float) -> None:
    """With probability ``rate`` at each intermediate checkpoint, a detour near it."""
    for cp_m in grid.cp_m[1:-1]:
        if rng.random() >= rate:
            continue
        p = float(np.clip(cp_m + rng.uniform(-DETOUR_NEAR_M, DETOUR_NEAR_M), 0.0, grid.length))
        metres, stay = rng.uniform(*DETOUR_OFF_M), rng.uniform(*DETOUR_STAY_S)
        heading = _heading(course, p) + _side(rng)
        walk = metres / DETOUR_WALK_MPS
        t = _pause_plan(plan, p, 2 * walk + stay)
        plan.detours.append(_Detour(p, t, walk, stay, heading, metres))


def _plan_runner(race: Race, grid: _Grid, rng: np.random.Generator, kt: Array, role: str,
                 options: SimOptions) -> _Plan:
    """Apply a runner's detours, incident, dropout or cutoff to their base motion."""
    kp, length, weather = grid.m, grid.length, options.weather
    plan = _Plan(kt, kp, [], "finished", "", length, None, 0.0, role == "battery")
    if options.checkpoint_detours > 0.0:
        _add_detours(plan, race.course, grid, rng, options.checkpoint_detours)
    if role == "stop":
        _pause_plan(plan, rng.uniform(0.3, 0.7) * length, 900.0)
        plan.incidents.append("stopped")
    elif role == "off_course":
        p, metres = rng.uniform(0.25, 0.75) * length, rng.uniform(300.0, 500.0)
        seconds = 2 * metres / rng.uniform(1.2, 1.8) + rng.uniform(30.0, 120.0)
        t = _pause_plan(plan, p, seconds)
        plan.excursion = (t, seconds, _heading(race.course, p) + _side(rng), metres)
        plan.incidents.append("off_course")
    stay = rng.uniform(120.0, 360.0)  # finishers switch off a few minutes after the line
    walk_back = False
    if role in ("dropout", "sos"):
        plan.status = "dnf"
        if role == "dropout":
            plan.p_end = rng.uniform(0.1, 0.9) * length
            plan.reason = str(rng.choice(_DROPOUT_REASONS[weather]))
            stay, walk_back = rng.uniform(300.0, 1200.0), bool(rng.random() < 0.4)
        else:
            plan.p_end = _sos_point(race, rng)
            plan.reason = f"SOS at km {plan.p_end / 1000:.1f}"
            stay = rng.uniform(3600.0, 5400.0)  # until the rescue team takes the tracker
    cross = _first_time_at(plan.kt, plan.kp, grid.cp_m)
    for j, cp in enumerate(race.checkpoints[1:-1], start=1):
        if cp.cutoff_s is not None and grid.cp_m[j] <= plan.p_end and cross[j] > cp.cutoff_s:
            plan.status, plan.p_end = "dnf", float(grid.cp_m[j])
            plan.reason = f"missed the {cp.name} cutoff"
            stay, walk_back = rng.uniform(600.0, 1800.0), False
            break
    if plan.status == "dnf" and role == "sos" and plan.reason.startswith("SOS"):
        plan.incidents.append("sos")
    plan.crossings = [(cp.id, float(cross[j])) for j, cp in enumerate(race.checkpoints)
                      if grid.cp_m[j] <= plan.p_end]
    if plan.status == "finished":
        plan.finish_s = float(cross[-1])
        if plan.finish_s > race.time_limit_s:
            plan.reason = "finished after the time limit"
        if options.tracker_off_at_finish:
            stay = 0.0  # switched off on the line
    plan.detours = [d for d in plan.detours if d.p < plan.p_end]
    _stop_at(plan, stay, walk_back, grid, rng)
    return plan


def _stop_at(plan: _Plan, stay: float, walk_back: bool, grid: _Grid,
             rng: np.random.Generator) -> None:
    """Cut the motion at ``plan.p_end``; then stay there or walk back to an aid station."""
    t_stop = float(_first_time_at(plan.kt, plan.kp, np.array([plan.p_end]))[0])
    k = int(np.searchsorted(plan.kp, plan.p_end, side="left"))
    kt = np.concatenate([plan.kt[:k], [t_stop]])
    kp = np.concatenate([plan.kp[:k], [plan.p_end]])
    behind = grid.cp_m[grid.cp_m < plan.p_end - 300.0]
    if walk_back and behind.size:
        wait = rng.uniform(120.0, 600.0)
        back = float(behind[-1])
        kt = np.concatenate([kt, [t_stop + wait, t_stop + wait + (plan.p_end - back) / WALK_MPS]])
        kp = np.concatenate([kp, [plan.p_end, back]])
        plan.reason += f", walked back to km {back / 1000:.1f}"
        plan.end_s = float(kt[-1]) + rng.uniform(60.0, 300.0)
    else:
        plan.end_s = t_stop + stay
    if "sos" in plan.incidents:
        plan.sos_from = t_stop + rng.uniform(30.0, 120.0)
    plan.kt, plan.kp = kt, kp


def _sos_point(race: Race, rng: np.random.Generator) -> float:
    """Somewhere on the first danger zone, or near the highest point without one."""
    if race.danger_zones:
        z = race.danger_zones[0]
        return float(rng.uniform(z.km_from, z.km_to) * 1000.0)
    c = race.course
    top = float(c.dist[int(np.argmax(c.ele))])
    return float(np.clip(top + rng.uniform(-300.0, 300.0), 0.0, c.length_m))


def _heading(course: Course, p: float) -> float:
    """Direction of travel (radians from east) at ``p``."""
    i = int(np.clip(np.searchsorted(course.dist, p), 1, course.dist.size - 1))
    return math.atan2(course.y[i] - course.y[i - 1], course.x[i] - course.x[i - 1])


def _side(rng: np.random.Generator) -> float:
    """A wrong turn: 60-100 degrees off the course, left or right."""
    return float(math.radians(rng.uniform(60.0, 100.0)) * rng.choice([-1.0, 1.0]))


_M_PER_DEG = math.pi / 180.0 * EARTH_RADIUS_M


def _track(course: Course, plan: _Plan, rng: np.random.Generator, options: SimOptions,
           holes: list[tuple[float, float]], dev: int) -> dict[str, npt.NDArray[np.generic]]:
    """One tracker's delivered fixes (columns, times in seconds from the start)."""
    iv = options.interval_s
    t0 = -rng.uniform(180.0, 600.0)  # switched on in the start pen
    b0, drain = rng.uniform(0.7, 1.0), rng.uniform(0.03, 0.08) / 3600.0
    if plan.weak_battery:  # dies somewhere in the race
        b0 = rng.uniform(0.15, 0.35)
        drain = b0 / (rng.uniform(0.25, 0.75) * (plan.end_s - t0))
    dead = t0 + b0 / drain
    end = min(plan.end_s, dead)
    plan.battery_dead = dead < plan.end_s
    t = t0 + np.arange(math.floor((end - t0) / iv) + 1) * iv
    t += rng.uniform(-0.3, 0.3, t.size) * iv
    t = t[t <= end]
    p = np.interp(t, plan.kt, plan.kp)
    lat = np.interp(p, course.dist, course.lat)
    lon = np.interp(p, course.dist, course.lon)
    east, north = rng.normal(0.0, options.noise_m, (2, t.size))
    wild = rng.random(t.size) < 0.005  # multipath: a 50-100 m error now and then
    r, a = rng.uniform(50.0, 100.0, t.size), rng.uniform(0.0, 2 * math.pi, t.size)
    east += np.where(wild, r * np.cos(a), 0.0)
    north += np.where(wild, r * np.sin(a), 0.0)
    if plan.excursion is not None:
        t_a, seconds, heading, metres = plan.excursion
        out = metres * np.clip(1.0 - np.abs(2.0 * (t - t_a) / seconds - 1.0), 0.0, None)
        east += out * math.cos(heading)
        north += out * math.sin(heading)
    for d in plan.detours:
        off_east, off_north = d.offset(t)
        east += off_east
        north += off_north
    lat = lat + north / _M_PER_DEG
    lon = lon + east / (_M_PER_DEG * np.cos(np.radians(lat)))
    ele = np.interp(p, course.dist, course.ele) + rng.normal(0.0, 1.5 * options.noise_m, t.size)
    acc = np.maximum(1.5 * options.noise_m * rng.uniform(0.8, 1.25, t.size), 1.0)
    bat = np.clip(b0 - drain * (t - t0), 0.0, 1.0)
    latency = 0.5 + rng.lognormal(math.log(1.5), 0.6, t.size)
    t_ms = np.round(t * 1000.0).astype(np.int64)
    in_hole = np.zeros(t.size, dtype=bool)
    for a_m, b_m in holes:
        in_hole |= (p >= a_m) & (p <= b_m)
    # A fix taken in a hole is stored; on reconnect the tracker sends its current fix,
    # then the stored ones (oldest first) half a second later.
    idx = np.where(in_hole, t.size, np.arange(t.size))
    flush = np.minimum.accumulate(idx[::-1])[::-1]
    keep = (flush < t.size) & (rng.random(t.size) >= options.loss)
    flush = np.minimum(flush, t.size - 1)
    arrival = t_ms[flush] + np.round(latency[flush] * 1000.0).astype(np.int64) + 500 * in_hole
    return {
        "dev": np.full(int(keep.sum()), dev, dtype=np.int64), "t": t_ms[keep],
        "arrival": arrival[keep], "lat": np.round(lat[keep], 6), "lon": np.round(lon[keep], 6),
        "ele": np.round(np.clip(ele[keep], -400.0, 8800.0), 1), "acc": np.round(acc[keep], 1),
        "bat": np.round(bat[keep], 2), "sos": t[keep] >= plan.sos_from,
        "generated": np.array([t.size]), "span": t_ms[[0, -1]],
    }


def _assemble(race: Race, entrants: tuple[Entrant, ...],
              columns: list[dict[str, npt.NDArray[np.generic]]], crossings: list[Crossing],
              outcomes: list[Outcome], holes: list[tuple[float, float]],
              incidents: dict[str, str]) -> Simulation:
    """All trackers' fixes merged in arrival order (ties: device, then fix time)."""
    def cat(key: str) -> npt.NDArray[np.generic]:
        return np.concatenate([c[key] for c in columns]) if columns else np.empty(0)

    t = cat("t").astype(np.int64) + race.start_ms
    arrival = cat("arrival").astype(np.int64) + race.start_ms
    dev = cat("dev").astype(np.int64)
    order = np.lexsort((t, dev, arrival))
    devices = tuple(e.device for e in entrants if e.device)
    return Simulation(
        device_ids=devices, dev=dev[order], t=t[order], arrival=arrival[order],
        lat=cat("lat").astype(np.float64)[order], lon=cat("lon").astype(np.float64)[order],
        ele=cat("ele").astype(np.float64)[order], acc=cat("acc").astype(np.float64)[order],
        bat=cat("bat").astype(np.float64)[order], sos=cat("sos").astype(bool)[order],
        crossings=crossings, outcomes=outcomes, holes=holes,
        generated=int(cat("generated").sum()), incidents=incidents,
    )
