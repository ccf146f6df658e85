"""When a runner crossed a given distance, from the noisy progress observations around it.

Interpolating between the two observations either side of a checkpoint inherits all of
their GPS noise (10 m at ~3 m/s is ~3 s), and one multipath fix ahead moves the split
early. Around a checkpoint a runner moves at a roughly steady pace, so a straight line
``progress = a + b * t`` fitted robustly to the nearby observations (Theil-Sen, then a
least-squares refit of the points within a few sigma of it) averages the noise away and
ignores outliers; the crossing is where the line reaches the checkpoint's distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median

# Residuals beyond this many sigma are outliers (multipath, a mis-match on another leg).
TRIM_SIGMA = 3.0
# The spread of a fix's progress is never assumed below this (GPS noise along the path).
MIN_SIGMA_M = 8.0
# A line needs this many points, and a slope above this (m/s), to say where a runner was.
MIN_POINTS = 4
MIN_SPEED_MPS = 0.2


@dataclass(frozen=True, slots=True)
class Line:
    """A fitted ``progress = a + b * t``, with what its uncertainty needs: the residual
    spread ``sigma`` (m) of the ``n`` points it was fitted to, their mean time ``mt``
    and their sum of squared time deviations ``sxx``."""

    a: float
    b: float
    sigma: float
    n: int
    mt: float
    sxx: float

    def sigma_at(self, t: float) -> float:
        """Standard error (m) of the line's progress at ``t``: ``sigma`` times
        sqrt(1/n + (t - mt)^2 / sxx), growing as ``t`` moves away from the points (an
        extrapolation to a finish line past the last fix is less sure)."""
        if self.sxx <= 0.0:
            return math.inf
        return self.sigma * math.sqrt(1.0 / self.n + (t - self.mt) ** 2 / self.sxx)


def fit_line(ts: list[float], ps: list[float]) -> tuple[float, float] | None:
    """Robust (a, b) with ``p ~ a + b * t`` (t in seconds), or None with too few points
    (``fit``)."""
    line = fit(ts, ps)
    return None if line is None else (line.a, line.b)


def fit(ts: list[float], ps: list[float]) -> Line | None:
    """The robust line through (ts, ps), or None with too few points.

    Theil-Sen gives a start that outliers cannot move; points further than
    ``TRIM_SIGMA`` sigma from it are dropped and the rest refitted by least squares.
    The line's ``sigma`` is the refit's residual standard deviation, never below
    ``MIN_SIGMA_M``.
    """
    n = len(ts)
    if n < MIN_POINTS or n != len(ps):
        return None
    slopes = [(ps[j] - ps[i]) / (ts[j] - ts[i])
              for i in range(n) for j in range(i + 1, n) if ts[j] != ts[i]]
    if not slopes:
        return None
    b = median(slopes)
    a = median(p - b * t for t, p in zip(ts, ps, strict=True))
    res = [p - a - b * t for t, p in zip(ts, ps, strict=True)]
    sigma = max(MIN_SIGMA_M, 1.4826 * median(abs(r) for r in res))
    keep = [k for k in range(n) if abs(res[k]) <= TRIM_SIGMA * sigma]
    theil_sen = len(keep) < MIN_POINTS  # too few inliers to refit: the start stands
    if theil_sen:
        keep = list(range(n))
    mt = sum(ts[k] for k in keep) / len(keep)
    mp = sum(ps[k] for k in keep) / len(keep)
    sxx = sum((ts[k] - mt) ** 2 for k in keep)
    if theil_sen or sxx <= 0.0:
        return Line(a, b, sigma, len(keep), mt, sxx)
    b = sum((ts[k] - mt) * (ps[k] - mp) for k in keep) / sxx
    a = mp - b * mt
    sse = sum((ps[k] - a - b * ts[k]) ** 2 for k in keep)
    spread = math.sqrt(sse / (len(keep) - 2)) if len(keep) > 2 else sigma
    return Line(a, b, max(MIN_SIGMA_M, spread), len(keep), mt, sxx)


def crossing(ts: list[float], ps: list[float], d: float) -> tuple[float, float] | None:
    """(time, standard error s) at which the robust line through (ts, ps) reaches ``d``
    metres (time in the unit and origin of ``ts``, seconds); None when there are too
    few points or the runner is not moving forward there. The error is the line's
    progress error there over its speed."""
    line = fit(ts, ps)
    if line is None or line.b < MIN_SPEED_MPS:
        return None
    t = (d - line.a) / line.b
    return t, line.sigma_at(t) / line.b


def crossing_time(ts: list[float], ps: list[float], d: float) -> float | None:
    """The time (same unit and origin as ``ts``, seconds) at which the robust line through
    (ts, ps) reaches ``d`` metres; None when there are too few points or the runner is
    not moving forward there."""
    x = crossing(ts, ps, d)
    return None if x is None else x[0]
