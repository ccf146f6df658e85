"""One runner's state: a time-sorted track of observations, the splits and the status.

Observations arrive in any order (trackers flush stored fixes after a coverage hole,
retries duplicate them), so the track is kept sorted by fix time and a late fix is
inserted where it belongs, refining the past. Per fix the work is two bisections, an
insertion and an update of the progress envelope that stops as soon as the envelope is
unchanged, so a fix costs O(log n) plus a small window.

* Fixes (``f_t``, ``f_lat``, ``f_lon``, ``f_p``, ``f_off``): every fix by time,
  deduplicated on its time, with its matched progress and distance off the course; kept
  for off-course alerting, "last seen" and re-matching. A fix that arrives between two
  known ones changes its neighbours' matching windows, so the engine re-matches the
  suspect neighbours (``suspects``, ``update_fix``): on courses that share paths a fix
  first matched with too little context is put right once its neighbours arrive.
* Progress observations (``a_t``, ``a_p``, ``a_src``): fixes trusted for progress (within
  ``OFF_TRACK_M`` of the course and not implausibly far ahead of the runner's earlier
  progress), plus chip reads and manual splits at their checkpoint's distance.
* The envelope ``a_m`` is the running maximum of progress over time: GPS noise and a
  runner stepping back never move a split earlier or make splits unordered.
* Held chip reads (``held``): reads that imply a speed along the course no trail runner
  reaches, from the previous split (or the start) or to the next one (``judge_chip``).
  They are not applied and are not observations; race control sees them as alerts and
  decides with a manual split.

A split is the moment the envelope crosses a checkpoint's distance, linearly
interpolated between the observations either side (the start of the race at progress 0
is an implicit first observation). A manual split wins over a chip read, which wins over
the GPS estimate when it is plausible (``chip_read``).
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from race_engine.crossing import crossing
from race_engine.model import Race, Status
from race_engine.record import RecordCurve

# A fix further than this from the course is kept for off-course alerts, not for progress.
OFF_TRACK_M = 200.0
# Progress faster than this since the earlier envelope (plus the slack, for GPS noise and
# matching jitter) is a mis-match onto another part of the course: no runner sustains it.
MAX_SPEED_MPS = 8.0
SPEED_SLACK_M = 150.0
# The matching window (see race_engine.matching): 7 m/s since the neighbouring fix.
WINDOW_SPEED_MPS = 7.0
MIN_AHEAD_M = 500.0
# Where a runner is expected before its own pace is known (a mid-pack trail pace).
PRIOR_PACE_MPS = 2.5
# Within this long after the previous fix, the runner is expected where it was (the
# matcher already prefers passes ahead); an average pace would overshoot on a steep
# switchback climb and pick the leg above.
EXTRAPOLATE_AFTER_S = 120.0
BEHIND_M = 300.0

# A runner who stops at a checkpoint (aid station) sends fixes scattered a few metres
# either side of it, and the first fix past it may come minutes after the arrival. So a
# GPS split is triggered this far before the checkpoint and timed at the checkpoint at
# the runner's speed on arrival (never later than the interpolated crossing itself).
SPLIT_TOL_M = 15.0
# The finish area: a runner whose progress reaches this far from the end of the course
# has finished, timed at the line by the approach (the paced line below), whether or not
# a fix falls past the line. Trackers are often switched off on the line, and at 10 s
# fixes and ~3 m/s the last fix lands up to 30 m short of it (60 m after a lost fix):
# with the trigger at 25 m, a third of such finishes were missing. A runner who stops for
# good inside the last 60 m is rare; race control mends it (reinstate, manual split).
FINISH_AREA_M = 60.0
# GPS noise rarely puts a runner on the last metre of the course, and progress stops at
# its end: the finish's line leaves out observations in the last 25 m.
FINISH_SLACK_M = 25.0

# A GPS split is refined by a robust line through the fixes around the crossing (see
# race_engine.crossing), in paced progress (Layout.paced): those this long before and
# after it, within FIT_OFF_M of the course (further off, a fix may be matched onto
# another leg of a switchback). None after: a runner often stops at the aid station at
# a checkpoint, which flattens the line. 90 s before: over 150 s the pace's departures
# from the reference curve's shape biased splits by up to 10 s on long descents; over
# 60 s GPS noise dominates (docs/benchmarks.md, "Split accuracy v2").
FIT_BEFORE_MS = 90_000
FIT_AFTER_MS = 0
FIT_OFF_M = 45.0
# A GPS split says how sure it is: the half-width of a 95% interval, Z95 times the fit's
# own standard error (race_engine.crossing: GPS noise over the approach's speed, larger
# when extrapolated) and SPLIT_MODEL_S of the approach model's error (a runner's pace
# departs from the reference curve's shape), added in quadrature; a split from the
# envelope alone (too few fixes for a line) is sure to within the time between the
# observations either side of it. SPLIT_MODEL_S is calibrated so that the interval
# holds the truth 95% of the time on the simulated fields (docs/benchmarks.md).
Z95 = 1.96
SPLIT_MODEL_S = 2.5
# The refined split may move at most this far from the envelope's own crossing.
FIT_MAX_SHIFT_MS = 400_000

# A chip read is applied only if the speed it implies along the course, from the
# runner's previous split (or the start) to the mat and from the mat to the next split,
# is one a trail runner can run (docs/race-engine.md, "Implausible chip reads"):
# at most CHIP_MAX_MPS (7 m/s is 1500 m world-record pace on a track, 2:23 per km; the
# road-marathon record is 5.8 m/s), and, when the race has record splits, at most
# CHIP_RECORD_FACTOR times the course record's speed over that stretch (the record
# curve, race_engine.record: a third less time than the record holder took there).
# A GPS split is an estimate (p95 error ~7 s): against one, the read is judged as if
# that split could be CHIP_GPS_SLACK_MS closer to it.
CHIP_MAX_MPS = 7.0
CHIP_RECORD_FACTOR = 1.5
CHIP_GPS_SLACK_MS = 15_000

GPS, CHIP, MANUAL = 0, 1, 2
SOURCES = ("gps", "chip", "manual")
_NAN = math.nan


@dataclass(frozen=True, slots=True)
class Split:
    """The time a runner crossed a checkpoint, and where that time comes from."""

    checkpoint: str
    t_ms: int
    source: str  # "gps", "chip" or "manual"
    # A GPS split's error estimate: the half-width (s) of its 95% interval (see
    # SPLIT_MODEL_S). None for chip reads and manual splits, the timing team's own.
    err_s: float | None = None


@dataclass(frozen=True, slots=True)
class HeldRead:
    """A chip read not applied: the speed it implies along the course is implausible.

    ``against`` is the checkpoint whose split it contradicts (None: the race start),
    ``after`` whether that split is a later one (the read is too late for it, else too
    early after it), ``speed_mps`` the implied speed (None when the read is not even
    after, or before, that split) and ``max_mps`` the fastest plausible speed there.
    """

    checkpoint: str
    t_ms: int
    against: str | None
    after: bool
    speed_mps: float | None
    max_mps: float

    def to_dict(self) -> dict[str, Any]:
        return {"t_ms": self.t_ms, "against": self.against, "after": self.after,
                "speed_mps": self.speed_mps, "max_mps": self.max_mps}


def envelope_time_at(a_m: Sequence[float], a_t: Sequence[int], start_ms: int,
                     d: float) -> float | None:
    """Epoch ms at which a progress envelope (metres ``a_m`` at epoch ms ``a_t``, from a
    start at ``start_ms``) first reached ``d`` metres; None if not yet."""
    if not a_m:
        return None
    if d <= 0.0:
        return float(start_ms)
    i = bisect_left(a_m, d)
    if i == len(a_m):
        return None
    t1, m1 = a_t[i], a_m[i]
    t0, m0 = (a_t[i - 1], a_m[i - 1]) if i else (start_ms, 0.0)
    return t0 + (d - m0) / (m1 - m0) * (t1 - t0)


def ordered_splits(raw: list[Split]) -> list[Split]:
    """Effective splits in course order (``raw``), ordered in time: GPS estimates are
    ordered by construction; a chip read or manual split is kept as given, and a GPS
    estimate next to one is clamped so the sequence stays ordered (e.g. a noisy fix must
    not put a split after the next chip read)."""
    out: list[Split] = []
    bound: float = math.inf
    for s in reversed(raw):  # later authoritative times bound earlier GPS ones
        if s.source == "gps" and s.t_ms > bound:
            s = Split(s.checkpoint, int(bound), "gps", s.err_s)
        elif s.source != "gps":
            bound = min(bound, s.t_ms)
        out.append(s)
    out.reverse()
    low = -math.inf
    for n, s in enumerate(out):
        if s.source == "gps" and s.t_ms < low:
            out[n] = Split(s.checkpoint, int(low), "gps", s.err_s)
        low = max(low, out[n].t_ms)
    return out


def _interp(x: float, xs: tuple[float, ...], ys: tuple[float, ...]) -> float:
    """``ys`` at ``x`` on the piecewise-linear curve (xs increasing), flat beyond its ends."""
    k = bisect_right(xs, x)
    if k == 0:
        return ys[0]
    if k == len(xs):
        return ys[-1]
    x0, x1 = xs[k - 1], xs[k]
    return ys[k - 1] + (ys[k] - ys[k - 1]) * (x - x0) / (x1 - x0)


@dataclass(frozen=True)
class Layout:
    """A race's checkpoints as the runner state needs them: ids and metres, in course order.

    ``trig`` is where a GPS split is triggered: ``SPLIT_TOL_M`` before the checkpoint
    (``FINISH_AREA_M`` before a finish at the very end of the course; the start at 0).
    Built directly, a layout triggers at the checkpoints themselves. ``record_s`` is the
    course record's time (s from the start) at each checkpoint, from the record curve,
    when the race has record splits (else empty): it bounds chip reads (``max_mps``).
    """

    start_ms: int
    ids: tuple[str, ...]
    m: tuple[float, ...]
    index: dict[str, int] = field(default_factory=dict)
    trig: tuple[float, ...] = ()
    record_s: tuple[float, ...] = ()
    # The reference curve (record, else effort: race_engine.record) as (metres, seconds),
    # the shape of a runner's pace along the course that a split's line is fitted in.
    pace_d: tuple[float, ...] = ()
    pace_t: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.trig:
            object.__setattr__(self, "trig", self.m)

    @classmethod
    def from_race(cls, race: Race, curve: RecordCurve | None = None) -> Layout:
        """The layout of ``race``; checkpoint distances are clamped to the course length.
        ``curve`` is the race's record curve when already built (else built here, when
        the race has record splits)."""
        cps = sorted(race.checkpoints, key=lambda c: c.m)
        ids = tuple(c.id for c in cps)
        length = race.course.length_m
        m = tuple(min(c.m, length) for c in cps)
        trig = tuple(x - FINISH_AREA_M if x >= length - 1e-6 else max(x - SPLIT_TOL_M, 0.0)
                     for x in m)
        curve = curve if curve is not None else RecordCurve.from_race(race)
        record_s = tuple(curve.t_at(x) for x in m) if race.record else ()
        return cls(race.start_ms, ids, m, {cid: i for i, cid in enumerate(ids)}, trig,
                   record_s, tuple(curve.d), tuple(curve.t_s))

    def paced(self, i: int) -> Callable[[float], float]:
        """Progress ``p`` (m) as the metres it is worth at checkpoint ``i``'s pace: the
        reference curve's seconds from ``p`` to the checkpoint, at the curve's speed
        there. A runner keeps roughly the same pace relative to the reference over a
        few minutes while their speed in metres changes with the gradient, so a line
        through paced progress against time fits an approach that slows on a climb or
        speeds up downhill; a line through raw metres bends the split by the change
        (measured: -13 s to +6 s by checkpoint with no GPS noise at all). Identity for a
        layout built without a curve."""
        xs, ts = self.pace_d, self.pace_t
        if len(xs) < 2:
            return lambda p: p
        d = self.m[i]
        k = min(max(bisect_left(xs, d), 1), len(xs) - 1)  # the stretch that ends at d
        speed = (xs[k] - xs[k - 1]) / max(ts[k] - ts[k - 1], 1e-9)  # metres per curve second
        t_d = _interp(d, xs, ts)
        return lambda p: d + (_interp(p, xs, ts) - t_d) * speed

    def max_mps(self, a: int, b: int) -> float:
        """The fastest plausible speed (m/s) along the course from checkpoint ``a`` (-1:
        the race start) to checkpoint ``b``: ``CHIP_MAX_MPS``, or ``CHIP_RECORD_FACTOR``
        times the record's speed there when that is less."""
        top = CHIP_MAX_MPS
        if self.record_s:
            d = self.m[b] - (self.m[a] if a >= 0 else 0.0)
            dt = self.record_s[b] - (self.record_s[a] if a >= 0 else 0.0)
            if d > 0.0 and dt > 0.0:
                top = min(top, CHIP_RECORD_FACTOR * d / dt)
        return top


class RunnerState:
    """The mutable state of one runner in one race. See the module docstring."""

    def __init__(self, bib: str, layout: Layout) -> None:
        self.bib = bib
        self.layout = layout
        self.f_t: array[int] = array("q")
        self.f_lat: array[float] = array("d")
        self.f_lon: array[float] = array("d")
        self.f_p: array[float] = array("d")
        self.f_off: array[float] = array("d")
        self.a_t: array[int] = array("q")
        self.a_p: array[float] = array("d")
        self.a_m: array[float] = array("d")
        self.a_src: array[int] = array("b")
        self.gps: dict[str, int] = {}
        self.gps_err: dict[str, float] = {}  # each GPS split's err_s (see Split)
        # The time span of the fixes each GPS split was fitted to: a fix that arrives
        # there re-fits it even when the envelope does not move.
        self.fit_span: dict[str, tuple[float, float]] = {}
        self.chip: dict[str, int] = {}
        self.manual: dict[str, int] = {}
        self.held: dict[str, HeldRead] = {}  # implausible chip reads, by checkpoint
        self.status = Status.RUNNING
        self.reason = ""
        self.status_ms: int | None = None
        self.last_t: int | None = None  # the latest fix by fix time, and what it said
        self.last_lat = _NAN
        self.last_lon = _NAN
        self.last_off = _NAN
        self.last_bat: float | None = None
        self.sos_ms: int | None = None
        # When a list, every change is also appended to it: ``["f", t, ...]`` a fix
        # taken, ``["u", t, ...]`` a fix re-matched, ``["s", checkpoint, t, source]`` a
        # split set, ``["st", ...]`` a status, ``["c"]`` an SOS cleared. The processors
        # read it to store only the parts of the track that changed and to send only
        # the part of the progress curve that changed.
        self.journal: list[list[Any]] | None = None

    # ------------------------------------------------------------------ fixes

    def window(self, t: int) -> tuple[float, float, float]:
        """The matching window (near_m, behind_m, ahead_m) for a fix at time ``t``.

        The window runs from just behind the envelope at the latest observation before
        ``t`` (the start, 0 m, when there is none) to as far as the runner can have gone
        since at ``WINDOW_SPEED_MPS``. ``near_m``, which the matcher prefers among equally
        close passes of the course (shared paths), is where the runner is expected:
        interpolated in time towards the next observation, else, more than
        ``EXTRAPOLATE_AFTER_S`` after the previous one, moved on at the runner's average
        pace so far (``PRIOR_PACE_MPS`` before there is one).
        """
        a_t = self.a_t
        start = self.layout.start_ms
        k = bisect_left(a_t, t)
        t0, m0 = (a_t[k - 1], self.a_m[k - 1]) if k else (start, 0.0)
        dt = max(t - t0, 0) / 1000.0
        ahead = max(MIN_AHEAD_M, WINDOW_SPEED_MPS * dt)
        if k < len(a_t) and a_t[k] == t:  # the fix itself when re-matching
            k += 1
        if k < len(a_t) and a_t[k] > t0:
            shift = (max(self.a_p[k], m0) - m0) * dt * 1000.0 / (a_t[k] - t0)
        elif dt > EXTRAPOLATE_AFTER_S:
            pace = m0 / ((t0 - start) / 1000.0) if m0 > MIN_AHEAD_M and t0 > start \
                else PRIOR_PACE_MPS
            shift = min(pace, WINDOW_SPEED_MPS) * dt
        else:
            shift = 0.0
        shift = min(max(shift, 0.0), ahead)
        return m0 + shift, BEHIND_M + shift, ahead - shift

    def add_fix(self, t: int, progress_m: float, off_m: float, lat: float, lon: float,
                bat: float | None = None, sos: bool = False) -> list[str] | None:
        """Record a matched fix. Returns None for a duplicate (same fix time), else the
        ids of checkpoints whose effective split changed (usually none)."""
        f_t = self.f_t
        k = bisect_left(f_t, t)
        if k < len(f_t) and f_t[k] == t:
            return None
        if self.journal is not None:
            self.journal.append(["f", t, progress_m, off_m, lat, lon, bat, sos])
        f_t.insert(k, t)
        self.f_lat.insert(k, lat)
        self.f_lon.insert(k, lon)
        self.f_p.insert(k, progress_m)
        self.f_off.insert(k, off_m)
        if self.last_t is None or t > self.last_t:
            self.last_t, self.last_lat, self.last_lon, self.last_off = t, lat, lon, off_m
            if bat is not None:
                self.last_bat = bat
        if sos and self.sos_ms is None:
            self.sos_ms = t
        if t < self.layout.start_ms or not self._plausible(t, progress_m, off_m):
            return []
        span = self._insert_obs(t, progress_m, GPS)
        changed = [] if span is None else self._resplit(*span)
        return self._refit_near(t, changed)

    def suspects(self, t: int) -> list[tuple[int, float, float]]:
        """(t, lat, lon) of the fixes either side of the fix at ``t`` whose match is
        implausible next to it (further ahead than the runner can go, well behind, or
        off the course): matched with too little context, the engine re-matches them
        (``update_fix``)."""
        f_t, f_p = self.f_t, self.f_p
        k = bisect_left(f_t, t)
        out = []
        for j in (k - 1, k + 1):
            if 0 <= j < len(f_t):
                forward = f_p[j] - f_p[k] if j > k else f_p[k] - f_p[j]
                dt = abs(f_t[j] - t) / 1000.0
                if (self.f_off[j] > OFF_TRACK_M or forward < -BEHIND_M
                        or forward > SPEED_SLACK_M + MAX_SPEED_MPS * dt):
                    out.append((f_t[j], self.f_lat[j], self.f_lon[j]))
        return out

    def update_fix(self, t: int, progress_m: float, off_m: float) -> list[str] | None:
        """Replace the match of the known fix at ``t``. Returns None when the match is
        unchanged (or there is no such fix), else the checkpoints whose split changed."""
        k = bisect_left(self.f_t, t)
        if k == len(self.f_t) or self.f_t[k] != t or (
                self.f_p[k] == progress_m and self.f_off[k] == off_m):
            return None
        if self.journal is not None:
            self.journal.append(["u", t, progress_m, off_m])
        self.f_p[k], self.f_off[k] = progress_m, off_m
        if t == self.last_t:
            self.last_off = off_m
        spans = [self._remove_obs(t, GPS)]
        if t >= self.layout.start_ms and self._plausible(t, progress_m, off_m):
            spans.append(self._insert_obs(t, progress_m, GPS))
        changed: list[str] = []
        for span in spans:
            if span is not None:
                changed += [c for c in self._resplit(*span) if c not in changed]
        return self._refit_near(t, changed)

    def _plausible(self, t: int, p: float, off: float) -> bool:
        """Whether a fix can be trusted for progress (see OFF_TRACK_M, MAX_SPEED_MPS)."""
        if off > OFF_TRACK_M:
            return False
        k = bisect_left(self.a_t, t)
        t0, m0 = (self.a_t[k - 1], self.a_m[k - 1]) if k else (self.layout.start_ms, 0.0)
        return p - m0 <= SPEED_SLACK_M + MAX_SPEED_MPS * (t - t0) / 1000.0

    # ------------------------------------------------------- chip and manual

    def chip_read(self, checkpoint: str, t: int) -> list[str]:
        """Take a timing-mat read at ``checkpoint``: applied (``set_split`` with
        ``CHIP``) when plausible, else held (``held``, see ``judge_chip``), its split
        left as it was. A read no earlier than the applied read, or equal to the held
        one, changes nothing (a second reader, a retry). Returns the ids of changed
        splits (none when held).

        Raises:
            KeyError: ``checkpoint`` is not one of the race's checkpoints.
        """
        old = self.chip.get(checkpoint)
        held = self.held.get(checkpoint)
        if (old is not None and old <= t) or (held is not None and held.t_ms == t):
            return []
        verdict = self.judge_chip(checkpoint, t)
        if verdict is None:
            return self.set_split(checkpoint, t, CHIP)
        if held is None or t < held.t_ms:  # of two held reads the earlier is kept
            self.held[checkpoint] = verdict
        return []

    def judge_chip(self, checkpoint: str, t: int) -> HeldRead | None:
        """Why a chip read at ``checkpoint`` at ``t`` is implausible, or None when it is
        not: over the course from the runner's previous split (the nearest checkpoint
        before with one; else the race start) to the mat, or from the mat to its next
        split, it implies a speed above ``Layout.max_mps``, with ``CHIP_GPS_SLACK_MS``
        allowed for a GPS split. Judged against the splits known now, the read's own
        checkpoint left out.

        Raises:
            KeyError: ``checkpoint`` is not one of the race's checkpoints.
        """
        lay = self.layout
        i = lay.index[checkpoint]
        m = lay.m[i]
        before: tuple[int, int, bool] = (-1, lay.start_ms, True)
        for j in range(i - 1, -1, -1):
            s = self.split(lay.ids[j])
            if s is not None:
                before = (j, s.t_ms, s.source != "gps" or lay.m[j] <= 0.0)
                break
        sides = [(False, *before)]
        for j in range(i + 1, len(lay.ids)):
            s = self.split(lay.ids[j])
            if s is not None:
                sides.append((True, j, s.t_ms, s.source != "gps"))
                break
        for after, j, t_other, exact in sides:
            other_m = lay.m[j] if j >= 0 else 0.0
            d = other_m - m if after else m - other_m
            if d <= 0.0:
                continue
            dt = t_other - t if after else t - t_other
            top = lay.max_mps(i, j) if after else lay.max_mps(j, i)
            allowed = dt + (0 if exact else CHIP_GPS_SLACK_MS)
            if allowed <= 0 or d * 1000.0 / allowed > top:
                return HeldRead(checkpoint, t, lay.ids[j] if j >= 0 else None, after,
                                d * 1000.0 / dt if dt > 0 else None, top)
        return None

    def set_split(self, checkpoint: str, t: int, source: int) -> list[str]:
        """Record a chip read (``CHIP``) or a manual split (``MANUAL``) at ``checkpoint``,
        as given (``chip_read`` first judges a chip read).

        An earlier chip read of the same checkpoint wins over a later one (the runner
        crossed the mat once; the later read is a second reader); a manual split
        replaces the previous manual split. Returns the ids of changed splits.

        Raises:
            KeyError: ``checkpoint`` is not one of the race's checkpoints.
        """
        i = self.layout.index[checkpoint]
        book = self.chip if source == CHIP else self.manual
        old = book.get(checkpoint)
        if old == t or (source == CHIP and old is not None and old < t):
            return []
        if self.journal is not None:
            self.journal.append(["s", checkpoint, t, source])
        spans = []
        if old is not None:
            spans.append(self._remove_obs(old, source))
        book[checkpoint] = t
        spans.append(self._insert_obs(t, self.layout.m[i], source))
        changed = {checkpoint}
        for span in spans:
            if span is not None:
                changed.update(self._resplit(*span))
        for tt in (t, old):
            if tt is not None:
                changed.update(self._refit_near(tt, []))
        return [cid for cid in self.layout.ids if cid in changed]

    # --------------------------------------------------------------- envelope

    def _insert_obs(self, t: int, p: float, src: int) -> tuple[float, float] | None:
        """Insert (or upgrade) an observation; the progress range whose splits may move."""
        a_t = self.a_t
        k = bisect_left(a_t, t)
        if k < len(a_t) and a_t[k] == t:
            if self.a_src[k] > src or (self.a_src[k] == src and self.a_p[k] == p):
                return None
            self.a_p[k], self.a_src[k] = p, src
            return self._refresh(k)
        a_t.insert(k, t)
        self.a_p.insert(k, p)
        self.a_m.insert(k, _NAN)
        self.a_src.insert(k, src)
        return self._refresh(k)

    def _remove_obs(self, t: int, src: int) -> tuple[float, float] | None:
        k = bisect_left(self.a_t, t)
        if k == len(self.a_t) or self.a_t[k] != t or self.a_src[k] != src:
            return None
        old = self.a_m[k]
        for a in (self.a_t, self.a_p, self.a_m, self.a_src):
            del a[k]
        if k == len(self.a_t):
            return (self.a_m[k - 1] if k else 0.0), old
        lo, hi = self._refresh(k)
        return lo, max(hi, old)

    def _refresh(self, k: int) -> tuple[float, float]:
        """Recompute the envelope from index ``k`` until it is unchanged; returns the
        range of progress over which the envelope (so a split) may have moved."""
        a_p, a_m = self.a_p, self.a_m
        lo = prev = a_m[k - 1] if k else 0.0
        hi = lo
        for j in range(k, len(a_p)):
            v = a_p[j] if a_p[j] > prev else prev
            old = a_m[j]
            if v == old:
                return lo, max(hi, v)
            a_m[j] = v
            prev = v
            hi = max(hi, v) if old != old else max(hi, v, old)  # old is NaN when new
        return lo, hi

    def _refit_near(self, t: int, changed: list[str]) -> list[str]:
        """``changed`` plus the checkpoints whose split was fitted to fixes around ``t``
        and moved when re-fitted."""
        for cid, (lo, hi) in list(self.fit_span.items()):
            if lo <= t <= hi and cid not in changed:
                i = self.layout.index[cid]
                changed += self._resplit_one(i)
        return changed

    def _resplit(self, lo: float, hi: float) -> list[str]:
        """Recompute the GPS splits of checkpoints within [lo, hi] metres."""
        changed = []
        for i in range(bisect_left(self.layout.m, lo), bisect_right(self.layout.trig, hi)):
            changed += self._resplit_one(i)
        return changed

    def _resplit_one(self, i: int) -> list[str]:
        """Recompute the GPS split of checkpoint ``i``; [its id] if the effective split
        changed."""
        cid = self.layout.ids[i]
        x = self._crossing(i)
        ti = None if x is None else int(x[0] + 0.5)
        err = None if x is None else round(x[1], 1)
        if x is None:
            self.fit_span.pop(cid, None)
        if self.gps.get(cid) == ti and self.gps_err.get(cid) == err:
            return []
        if err is None:
            self.gps_err.pop(cid, None)
        else:
            self.gps_err[cid] = err  # a change of err_s alone is a change of the split
        if ti is None:
            self.gps.pop(cid, None)
        else:
            self.gps[cid] = ti
        return [] if cid in self.chip or cid in self.manual else [cid]

    def _crossing(self, i: int) -> tuple[float, float] | None:
        """(epoch ms, err_s: see Split) of the GPS split at checkpoint ``i``: the
        envelope's crossing refined by a robust line through the fixes around it (see
        FIT_BEFORE_MS)."""
        base = self._envelope_crossing(i)
        if base is None:
            return None
        d = self.layout.m[i]
        if d <= 0.0:
            return base, 0.0  # the gun
        cap = d - FINISH_SLACK_M if i == len(self.layout.m) - 1 else math.inf
        tc, lo, hi = base, base, base
        paced = self.layout.paced(i)
        sigma_s: float | None = None
        for _ in range(4):
            ts, ps = self._fit_points(tc, cap, paced)
            lo, hi = min(lo, tc - FIT_BEFORE_MS), max(hi, tc + FIT_AFTER_MS)
            x = crossing(ts, ps, d)
            if x is None:
                break
            moved = x[0] * 1000.0
            tc += moved
            sigma_s = x[1]
            if abs(moved) < 500.0:
                break
        self.fit_span[self.layout.ids[i]] = (lo, hi)
        if sigma_s is None or abs(tc - base) > FIT_MAX_SHIFT_MS:
            return base, self._bracket_s(d)
        return tc, Z95 * math.hypot(sigma_s, SPLIT_MODEL_S)

    def _bracket_s(self, d: float) -> float:
        """Seconds between the observations either side of the envelope's crossing of
        ``d`` (the start when none before it; at least 1 s)."""
        j = min(bisect_left(self.a_m, d), len(self.a_t) - 1)
        t0 = self.a_t[j - 1] if j else self.layout.start_ms
        return max((self.a_t[j] - t0) / 1000.0, 1.0)

    def _fit_points(self, tc: float, cap: float,
                    paced: Callable[[float], float]) -> tuple[list[float], list[float]]:
        """(seconds from ``tc``, paced progress: Layout.paced) of the GPS observations
        the fit around ``tc`` uses (see FIT_BEFORE_MS)."""
        a_t, a_p, a_src, f_t, f_off = self.a_t, self.a_p, self.a_src, self.f_t, self.f_off
        ts: list[float] = []
        ps: list[float] = []
        for j in range(bisect_left(a_t, tc - FIT_BEFORE_MS), bisect_right(a_t, tc + FIT_AFTER_MS)):
            t, p = a_t[j], a_p[j]
            if a_src[j] != GPS or p > cap or f_off[bisect_left(f_t, t)] > FIT_OFF_M:
                continue
            ts.append((t - tc) / 1000.0)
            ps.append(paced(p))
        return ts, ps

    def _envelope_crossing(self, i: int) -> float | None:
        """Epoch ms at which the envelope crosses checkpoint ``i`` (see Layout.trig)."""
        d, trig = self.layout.m[i], self.layout.trig[i]
        at_d = self.time_at(d)
        if trig == d:
            return at_d
        t = self.time_at(trig)
        if t is None:
            return None
        j = bisect_left(self.a_m, trig)
        t0, m0 = (self.a_t[j - 1], self.a_m[j - 1]) if j else (self.layout.start_ms, 0.0)
        if self.a_t[j] <= t0:
            return t if at_d is None else at_d
        speed = (self.a_m[j] - m0) / (self.a_t[j] - t0)  # metres per ms
        t += (d - trig) / speed
        return t if at_d is None else min(t, at_d)

    # ------------------------------------------------------------------ reads

    def time_at(self, d: float) -> float | None:
        """Epoch ms at which the envelope first reached ``d`` metres; None if not yet."""
        return envelope_time_at(self.a_m, self.a_t, self.layout.start_ms, d)

    def observed_at(self, d: float) -> int | None:
        """Epoch ms of the first observation at or past ``d`` metres (not interpolated)."""
        i = bisect_left(self.a_m, d)
        return self.a_t[i] if i < len(self.a_m) else None

    def progress_at(self, t: float) -> float:
        """The envelope's progress (m) at epoch ms ``t``, interpolated between observations."""
        a_t = self.a_t
        k = bisect_right(a_t, t)
        if k == len(a_t):
            return self.a_m[-1] if k else 0.0
        t0, m0 = (a_t[k - 1], self.a_m[k - 1]) if k else (self.layout.start_ms, 0.0)
        t1, m1 = a_t[k], self.a_m[k]
        if t <= t0:
            return m0
        return m0 + (m1 - m0) * (t - t0) / (t1 - t0)

    def current(self) -> tuple[int, float] | None:
        """(epoch ms, progress m) of the latest progress observation, or None."""
        if not self.a_t:
            return None
        return self.a_t[-1], self.a_m[-1]

    @property
    def progress_m(self) -> float:
        return self.a_m[-1] if self.a_m else 0.0

    def split(self, checkpoint: str) -> Split | None:
        """The effective (unclamped) split at ``checkpoint``: manual, chip, then GPS."""
        for book, src in ((self.manual, "manual"), (self.chip, "chip"), (self.gps, "gps")):
            t = book.get(checkpoint)
            if t is not None:
                return Split(checkpoint, t, src,
                             self.gps_err.get(checkpoint) if book is self.gps else None)
        return None

    def raw_splits(self) -> list[Split]:
        """Every checkpoint's effective (unclamped) split, in course order (``split``
        for each checkpoint, in one pass)."""
        if not (self.gps or self.chip or self.manual):
            return []
        out = []
        for cid in self.layout.ids:
            if cid in self.manual:
                out.append(Split(cid, self.manual[cid], "manual"))
            elif cid in self.chip:
                out.append(Split(cid, self.chip[cid], "chip"))
            elif cid in self.gps:
                out.append(Split(cid, self.gps[cid], "gps", self.gps_err.get(cid)))
        return out

    def splits(self) -> list[Split]:
        """The effective splits in course order, ordered in time.

        GPS estimates are ordered by construction; a chip read or manual split is kept
        as given, and a GPS estimate next to one is clamped so the sequence stays
        ordered (e.g. a noisy fix must not put a split after the next chip read).
        """
        return ordered_splits(self.raw_splits())

    def furthest(self) -> int:
        """Index of the furthest checkpoint with a split, -1 when none."""
        for i in range(len(self.layout.ids) - 1, -1, -1):
            if self.split(self.layout.ids[i]) is not None:
                return i
        return -1

    def off_streak_ms(self, limit_m: float) -> int | None:
        """Fix time at which the latest unbroken run of fixes beyond ``limit_m`` began, or
        None when the latest fix is within ``limit_m`` of the course."""
        f_t, f_off = self.f_t, self.f_off
        j = len(f_t) - 1
        if j < 0 or not f_off[j] > limit_m:
            return None
        while j > 0 and f_off[j - 1] > limit_m:
            j -= 1
        return f_t[j]

    # ----------------------------------------------------------------- status

    def set_status(self, status: Status, reason: str, t_ms: int | None) -> bool:
        """Apply a race-control status (DNF, DNS, DSQ, or RUNNING to reinstate).

        A reinstated runner with a finish split becomes FINISHED. Returns whether the
        status or reason changed.
        """
        if self.journal is not None and (status, reason, t_ms) != (
                self.status, self.reason, self.status_ms):
            self.journal.append(["st", status.value, reason, t_ms])
        before = (self.status, self.reason)
        self.status, self.reason, self.status_ms = status, reason, t_ms
        if status is Status.RUNNING:
            self.reason = ""
            self.refresh_status()
        return (self.status, self.reason) != before

    def clear_sos(self) -> None:
        """Race control resolved the runner's SOS."""
        if self.journal is not None:
            self.journal.append(["c"])
        self.sos_ms = None

    def refresh_status(self) -> bool:
        """Finish a running runner whose finish split exists (and undo it if it went)."""
        fin = self.split(self.layout.ids[-1])
        if self.status is Status.RUNNING and fin is not None:
            self.status, self.status_ms = Status.FINISHED, fin.t_ms
            return True
        if self.status is Status.FINISHED and fin is None:
            self.status, self.status_ms = Status.RUNNING, None
            return True
        if self.status is Status.FINISHED and fin is not None and self.status_ms != fin.t_ms:
            self.status_ms = fin.t_ms
            return True
        return False

    # --------------------------------------------------------------- snapshot

    def to_dict(self, since: float = -math.inf) -> dict[str, Any]:
        """A JSON-able snapshot; ``from_dict`` restores an equal state. With ``since``,
        only the track at or after that time (the rest: ``track_dict``)."""
        return {
            "v": 1, "bib": self.bib,
            "status": self.status.value, "reason": self.reason, "status_ms": self.status_ms,
            **self.track_dict(since, math.inf),
            "chip": dict(self.chip), "manual": dict(self.manual),
            "held": {cid: h.to_dict() for cid, h in self.held.items()},
            "last": {"t": self.last_t, "lat": _num(self.last_lat), "lon": _num(self.last_lon),
                     "off": _num(self.last_off), "bat": self.last_bat},
            "sos_ms": self.sos_ms,
        }

    def track_dict(self, lo: float, hi: float) -> dict[str, Any]:
        """The fixes and observations with ``lo <= t < hi``, as in ``to_dict``."""
        i, j = bisect_left(self.f_t, lo), bisect_left(self.f_t, hi)
        k, m = bisect_left(self.a_t, lo), bisect_left(self.a_t, hi)
        return {
            "fixes": {"t": self.f_t[i:j].tolist(), "lat": self.f_lat[i:j].tolist(),
                      "lon": self.f_lon[i:j].tolist(), "p": self.f_p[i:j].tolist(),
                      "off": self.f_off[i:j].tolist()},
            "obs": {"t": self.a_t[k:m].tolist(), "p": self.a_p[k:m].tolist(),
                    "src": self.a_src[k:m].tolist()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], layout: Layout) -> RunnerState:
        """Restore a snapshot made by ``to_dict``.

        Raises:
            ValueError: the snapshot is not a version-1 runner snapshot or is malformed.
        """
        if not isinstance(d, dict) or d.get("v") != 1:
            raise ValueError("not a version 1 runner snapshot (expected a dict with v=1)")
        try:
            r = cls(str(d["bib"]), layout)
            r.status, r.reason, r.status_ms = Status(d["status"]), d["reason"], d["status_ms"]
            fx = d["fixes"]
            r.f_t, r.f_off = array("q", fx["t"]), array("d", fx["off"])
            r.f_lat, r.f_lon, r.f_p = (array("d", fx[k]) for k in ("lat", "lon", "p"))
            obs = d["obs"]
            r.a_t, r.a_p = array("q", obs["t"]), array("d", obs["p"])
            r.a_src = array("b", obs["src"])
            r.a_m = array("d", [_NAN]) * len(r.a_t)
            r.chip, r.manual = dict(d["chip"]), dict(d["manual"])
            r.held = {str(cid): HeldRead(str(cid), **h) for cid, h in d.get("held", {}).items()}
            last = d["last"]
            r.last_t, r.last_bat, r.sos_ms = last["t"], last["bat"], d["sos_ms"]
            r.last_lat, r.last_lon, r.last_off = (_NAN if last[k] is None else float(last[k])
                                                  for k in ("lat", "lon", "off"))
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"malformed runner snapshot: {e!r}") from e
        if not (len(r.f_t) == len(r.f_off) == len(r.f_lat) == len(r.f_lon) == len(r.f_p)
                and len(r.a_t) == len(r.a_p) == len(r.a_src)):
            raise ValueError("malformed runner snapshot: track arrays differ in length")
        if r.a_t:
            r._refresh(0)
        r._resplit(-math.inf, math.inf)
        return r


def _num(x: float) -> float | None:
    return None if x != x else x
