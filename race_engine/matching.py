"""Map-matching: where along the course a position fix lies.

A fix is projected onto the course segments inside a window of progress around the
runner's last known progress, never onto the whole course: courses cross themselves and
share paths (Zegama starts and finishes in the same street), and the nearest point of the
whole course is often the wrong one.

Choosing the window (the caller's job, e.g. the runner state):

* ``near_m`` is the progress of the runner's reference fix (the last trusted match), or
  None before the first match, which searches from the start: ``[0, ahead_m]``.
* ``ahead_m`` should grow with the time since that reference fix, as the fastest
  plausible speed times the elapsed time: ``ahead_m = max(500, 7 m/s * dt_s)``. After a
  one-hour coverage hole the window then spans 25 km, so the runner is still found.
* ``behind_m`` (300 m) allows for GPS noise and runners stepping back a little.

Within the window the closest projection wins, except that among local minima of the
distance within 15 m of the best one, the one whose progress is closest to ``near_m``
is preferred: on hairpins, switchbacks and out-and-back stretches two passes of the
course are often equally close, and continuity is the better guide. Runners move
forward, so a candidate behind ``near_m`` counts ``BACK_WEIGHT`` times its distance:
otherwise, on a switchback whose legs are closer than the GPS noise, the pass just
behind would win as often as the one ahead and the match would drift backwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from race_engine.course import Course

TIE_M = 15.0
BACK_WEIGHT = 3.0
_INF = np.array([np.inf])


@dataclass(frozen=True, slots=True)
class Match:
    """The matched point: progress along the course and distance off it, in metres."""

    progress_m: float
    off_m: float


def match(
    course: Course,
    lat: float,
    lon: float,
    near_m: float | None,
    *,
    behind_m: float = 300.0,
    ahead_m: float = 3000.0,
) -> Match:
    """Match a fix to the course within ``[near_m - behind_m, near_m + ahead_m]``.

    ``near_m`` None means the runner has not been matched yet: the window is
    ``[0, ahead_m]`` and near-ties prefer the start. Segments whose distance range
    intersects the window are candidates; progress is ``dist[i] + t * seg_len[i]`` of
    the closest point on segment ``i`` and ``off_m`` the distance from the fix to that
    point. See the module docstring for how to choose the window and how near-ties are
    broken.

    Raises:
        ValueError: a non-finite coordinate or window.
    """
    if not (np.isfinite(lat) and np.isfinite(lon)):
        raise ValueError(f"cannot match a fix at lat={lat}, lon={lon}")
    near = 0.0 if near_m is None else float(near_m)
    lo = near - behind_m if near_m is not None else 0.0
    hi = near + ahead_m
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"bad match window near_m={near_m}, ahead_m={ahead_m}")
    dist = course.dist
    nseg = dist.size - 1
    # Keep the window on the course so a runner reported past the finish still matches.
    lo = min(max(lo, 0.0), course.length_m)
    hi = min(max(hi, lo), course.length_m)
    i0 = max(int(dist.searchsorted(lo, side="left")) - 1, 0)
    i1 = max(min(int(dist.searchsorted(hi, side="right")), nseg), i0 + 1)

    # Per-call cost matters (once per fix): method calls rather than np.* dispatch, and
    # squared distances, with a square root only for the winner.
    fx, fy = course.project(lat, lon)
    px, py = fx - course.x[i0:i1], fy - course.y[i0:i1]
    dx, dy = course.seg_dx[i0:i1], course.seg_dy[i0:i1]
    t = ((px * dx + py * dy) * course.seg_inv_len2[i0:i1]).clip(0.0, 1.0)
    ex, ey = px - t * dx, py - t * dy
    off2 = ex * ex + ey * ey
    limit = (float(off2.min()) ** 0.5 + TIE_M) ** 2
    # Local minima of the distance along the window are the distinct "passes" of the
    # course near the fix; neighbouring segments of one pass are not rivals. The global
    # minimum is always one of them.
    padded = np.concatenate((_INF, off2, _INF))
    cands = ((off2 <= padded[:-2]) & (off2 <= padded[2:]) & (off2 <= limit)).nonzero()[0]
    if cands.size == 1:
        k = int(cands[0])
    else:
        prog = dist[i0 + cands] + t[cands] * course.seg_len[i0 + cands]
        ahead = prog - near
        k = int(cands[int(np.where(ahead >= 0, ahead, -BACK_WEIGHT * ahead).argmin())])
    return Match(float(dist[i0 + k] + t[k] * course.seg_len[i0 + k]), float(off2[k]) ** 0.5)


def match_many(
    course: Course,
    lats: Iterable[float],
    lons: Iterable[float],
    nears: Iterable[float | None],
    *,
    behind_m: float = 300.0,
    ahead_m: float = 3000.0,
) -> list[Match]:
    """``match`` applied to each (lat, lon, near) triple, in order, with one window size.

    Raises:
        ValueError: as ``match``; or the three sequences differ in length.
    """
    la, lo, ne = list(lats), list(lons), list(nears)
    if not len(la) == len(lo) == len(ne):
        raise ValueError(f"lats, lons and nears differ in length: {len(la)}, {len(lo)}, {len(ne)}")
    return [match(course, a, b, n, behind_m=behind_m, ahead_m=ahead_m)
            for a, b, n in zip(la, lo, ne, strict=True)]
