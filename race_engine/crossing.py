"""When a runner crossed a given distance, from the noisy progress observations around it.

Interpolating between the two observations either side of a checkpoint inherits all of
their GPS noise (10 m at ~3 m/s is ~3 s), and one multipath fix ahead moves the split
early. Around a checkpoint a runner moves at a roughly steady pace, so a straight line
``progress = a + b * t`` fitted robustly to the nearby observations (Theil-Sen, then a
least-squares refit of the points within a few sigma of it) averages the noise away and
ignores outliers; the crossing is where the line reaches the checkpoint's distance.
"""

from __future__ import annotations

from statistics import median

# Residuals beyond this many sigma are outliers (multipath, a mis-match on another leg).
TRIM_SIGMA = 3.0
# The spread of a fix's progress is never assumed below this (GPS noise along the path).
MIN_SIGMA_M = 8.0
# A line needs this many points, and a slope above this (m/s), to say where a runner was.
MIN_POINTS = 4
MIN_SPEED_MPS = 0.2


def fit_line(ts: list[float], ps: list[float]) -> tuple[float, float] | None:
    """Robust (a, b) with ``p ~ a + b * t`` (t in seconds), or None with too few points.

    Theil-Sen gives a start that outliers cannot move; points further than
    ``TRIM_SIGMA`` sigma from it are dropped and the rest refitted by least squares.
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
    if len(keep) < MIN_POINTS:
        return a, b
    mt = sum(ts[k] for k in keep) / len(keep)
    mp = sum(ps[k] for k in keep) / len(keep)
    sxx = sum((ts[k] - mt) ** 2 for k in keep)
    if sxx <= 0.0:
        return a, b
    b = sum((ts[k] - mt) * (ps[k] - mp) for k in keep) / sxx
    return mp - b * mt, b


def crossing_time(ts: list[float], ps: list[float], d: float) -> float | None:
    """The time (same unit and origin as ``ts``, seconds) at which the robust line through
    (ts, ps) reaches ``d`` metres; None when there are too few points or the runner is
    not moving forward there."""
    line = fit_line(ts, ps)
    if line is None or line[1] < MIN_SPEED_MPS:
        return None
    a, b = line
    return (d - a) / b
