"""The record-pace reference curve: the course record's time at every point of the course.

The record is known only at a few checkpoints (e.g. Sancti Spiritu 1:43:12, Aizkorri
2:05:13, finish 3:36:40). Between two of them time is taken proportional to *effort
distance*, which counts climbing as extra distance and steady descending as a little less:

    effort(a, b) = (b - a) + K_UP * ascent(a, b) - K_DOWN * descent(a, b)

and never less than ``MIN_EFFORT_RATIO`` of the horizontal distance (very steep descents
are slow, not fast). ``K_UP = 8`` is close to Naismith's rule (600 m of climb is worth
5 km); trail-running "km-effort" uses 10. The curve passes exactly through every record
split, so it is only as good as its shape between them. With no record at all, the same
curve scaled to a constant effort speed (``effort_curve``) still gives projections a
shape to follow.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import pairwise

import numpy as np

from race_engine.course import Course
from race_engine.model import Race

K_UP = 8.0
K_DOWN = 1.0
MIN_EFFORT_RATIO = 0.3
GRID_M = 50.0
# Effort metres per second of the stand-in curve when a race has no record splits.
EFFORT_SPEED_MPS = 3.0


def effort_profile(course: Course, step_m: float = GRID_M) -> tuple[list[float], list[float]]:
    """(distances, cumulative effort metres) on a grid of ``step_m`` ending at the finish."""
    d = np.arange(0.0, course.length_m, step_m)
    d = np.append(d, course.length_m)
    effort = [0.0]
    for a, b in pairwise(d):
        up, down = course.climb_between(float(a), float(b))
        flat = float(b - a)
        effort.append(effort[-1] + max(MIN_EFFORT_RATIO * flat, flat + K_UP * up - K_DOWN * down))
    return [float(x) for x in d], effort


class RecordCurve:
    """t_ref(d): reference seconds from the start at ``d`` metres, and its inverse.

    Build with ``from_race`` (record splits) or ``effort_curve`` (no record).
    ``name`` says which ("record" or "effort").
    """

    def __init__(self, d: list[float], t_s: list[float], name: str) -> None:
        self.d, self.t_s, self.name = d, t_s, name

    @classmethod
    def from_race(cls, race: Race) -> RecordCurve:
        """The record curve of ``race``, or its effort curve when it has no record splits.

        Raises:
            ValueError: a record split names an unknown checkpoint, or record times do
                not increase along the course.
        """
        if not race.record:
            return cls.effort_curve(race.course)
        d, effort = effort_profile(race.course)
        knots_d, knots_t = [0.0], [0.0]
        for r in race.record:
            try:
                m = min(race.checkpoint(r.checkpoint).m, race.course.length_m)
            except KeyError:
                raise ValueError(f"record split at unknown checkpoint {r.checkpoint!r}; "
                                 "use a checkpoint id of the race") from None
            if m <= knots_d[-1] or r.t_s <= knots_t[-1]:
                raise ValueError(f"record split {r.checkpoint} at {r.t_s} s does not come after "
                                 "the previous one in distance and time")
            knots_d.append(m)
            knots_t.append(r.t_s)
        # The knots join the grid so the curve passes exactly through each record split.
        grid = np.union1d(d, knots_d)
        e = np.interp(grid, d, effort)
        ke = np.interp(knots_d, d, effort)
        # Effort seconds per effort metre on each record interval; beyond the last record
        # split the last interval's rate carries on.
        seg = np.clip(np.searchsorted(ke, e, side="right") - 1, 0, len(knots_d) - 2)
        rate = np.diff(knots_t) / np.diff(ke)
        t = np.asarray(knots_t)[seg] + (e - ke[seg]) * rate[seg]
        return cls([float(x) for x in grid], [float(x) for x in t], "record")

    @classmethod
    def effort_curve(cls, course: Course) -> RecordCurve:
        """A stand-in reference: effort distance at ``EFFORT_SPEED_MPS``."""
        d, effort = effort_profile(course)
        return cls(d, [e / EFFORT_SPEED_MPS for e in effort], "effort")

    def t_at(self, d: float) -> float:
        """Reference seconds at ``d`` metres (clamped to the course)."""
        xs = self.d
        if d <= 0.0:
            return 0.0
        i = bisect_right(xs, d)
        if i >= len(xs):
            return self.t_s[-1]
        d0, d1 = xs[i - 1], xs[i]
        t0, t1 = self.t_s[i - 1], self.t_s[i]
        return t0 + (t1 - t0) * (d - d0) / (d1 - d0)

    def d_at(self, t_s: float) -> float:
        """Metres reached at reference second ``t_s`` (the inverse of ``t_at``)."""
        ts = self.t_s
        if t_s <= 0.0:
            return 0.0
        i = bisect_right(ts, t_s)
        if i >= len(ts):
            return self.d[-1]
        t0, t1 = ts[i - 1], ts[i]
        d0, d1 = self.d[i - 1], self.d[i]
        return d0 + (d1 - d0) * (t_s - t0) / (t1 - t0)

    def delta_s(self, elapsed_s: float, d: float) -> float:
        """Seconds behind (+) or ahead (-) of the reference at ``d`` metres."""
        return elapsed_s - self.t_at(d)


def fmt_delta(seconds: float) -> str:
    """'+1:12' / '-0:05' / '+1:02:03' for a signed number of seconds."""
    sign = "-" if seconds < 0 else "+"
    s = round(abs(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{sign}{h}:{m:02d}:{sec:02d}" if h else f"{sign}{m}:{sec:02d}"
