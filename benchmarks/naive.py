"""The split methods of commercial trackers, as the benchmarks' baselines.

``naive_splits``: the first fix whose matched position is past the checkpoint.

A runner's fixes are taken in event-time order, each map-matched with the engine's own
matcher (``race_engine.matching.match``) in a window that follows the previous fix's
match: ``near_m`` is the previous match's progress (none before the first fix),
``behind_m`` 300 m, ``ahead_m`` ``max(500, 7 m/s * seconds since the previous fix)``, the
window the matcher's docstring recommends. The split at a checkpoint is the time of the
first fix at or after the gun whose matched progress is at or past the checkpoint's
distance (clamped to the course length; ``REACH_TOLERANCE_M`` short of it counts, so
that a runner standing on the checkpoint with a perfect fix is there despite floating
point): no interpolation, no filtering of noisy or
off-course fixes, no envelope. This is what the engine's interpolated splits are
compared against; it is used only by the benchmarks.

``geofence_splits``: the first fix whose raw position (not matched) is within a radius
(30 m) of the checkpoint's point on the course, the course point at its distance.
Checkpoints are taken in course order and each one's fixes are searched after the
previous split found, as a tracker's gate sequence does, so that a finish on the start
line is not "reached" at the gun; a checkpoint whose circle no fix fell in is missing,
and the next one is searched from the last split found. For a mass start, leave the start
out (the gun is the start): a runner already past its circle at the first fix after the
gun would take the start, and so every later checkpoint, on the finish at the same spot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from race_engine import matching
from race_engine.course import Course, haversine_m

BEHIND_M = 300.0
MIN_AHEAD_M = 500.0
WINDOW_SPEED_MPS = 7.0
REACH_TOLERANCE_M = 1.0
GEOFENCE_RADIUS_M = 30.0

Matcher = Callable[..., matching.Match]


def naive_progress(course: Course, fixes: Iterable[tuple[int, float, float]], start_ms: int,
                   matcher: Matcher = matching.match) -> list[tuple[int, float]]:
    """(t_ms, matched progress m) of each fix ``(t_ms, lat, lon)``, in event-time order.

    Fixes are sorted by time first; a second fix with the same time (a retry) is dropped.
    The first fix's window starts at the course start and reaches as far as the runner
    can have gone since the gun (at least ``MIN_AHEAD_M``).

    Raises:
        ValueError: a non-finite coordinate (from the matcher).
    """
    out: list[tuple[int, float]] = []
    near: float | None = None
    t_prev = start_ms
    for t, lat, lon in sorted(fixes):
        if out and t == out[-1][0]:
            continue
        dt = max(t - t_prev, 0) / 1000.0
        ahead = max(MIN_AHEAD_M, WINDOW_SPEED_MPS * dt)
        m = matcher(course, lat, lon, near, behind_m=BEHIND_M, ahead_m=ahead)
        out.append((t, m.progress_m))
        near, t_prev = m.progress_m, t
    return out


def naive_splits(course: Course, checkpoints: Sequence[tuple[str, float]],
                 fixes: Iterable[tuple[int, float, float]], start_ms: int,
                 matcher: Matcher = matching.match) -> dict[str, int]:
    """The naive split (epoch ms) of each checkpoint ``(id, metres)`` the runner reached.

    A checkpoint is reached at the first fix at or after ``start_ms`` whose matched
    progress is at or past its distance (clamped to the course length, less
    ``REACH_TOLERANCE_M``); checkpoints never
    reached are absent from the result.

    Raises:
        ValueError: a non-finite coordinate (from the matcher).
    """
    targets = sorted((min(m, course.length_m) - REACH_TOLERANCE_M, cid)
                     for cid, m in checkpoints)
    out: dict[str, int] = {}
    nxt = 0
    for t, p in naive_progress(course, fixes, start_ms, matcher):
        if t < start_ms:
            continue
        # A fix can pass several checkpoints at once (after a gap): all get its time.
        while nxt < len(targets) and p >= targets[nxt][0]:
            out[targets[nxt][1]] = t
            nxt += 1
        if nxt == len(targets):
            break
    return out


def geofence_splits(course: Course, checkpoints: Sequence[tuple[str, float]],
                    fixes: Iterable[tuple[int, float, float]], start_ms: int,
                    radius_m: float = GEOFENCE_RADIUS_M) -> dict[str, int]:
    """The geofence split (epoch ms) of each checkpoint ``(id, metres)``.

    Checkpoints are taken by distance; a checkpoint's split is the first fix, in
    event-time order, at or after ``start_ms`` and after the previous split found, whose
    raw position is within ``radius_m`` of ``course.position_at(metres)``; checkpoints
    never entered are absent.

    Raises:
        ValueError: ``radius_m`` is not positive.
    """
    if not radius_m > 0:
        raise ValueError(f"geofence radius must be positive metres, got {radius_m}")
    rows = sorted(f for f in fixes if f[0] >= start_ms)
    if not rows:
        return {}
    t, lat, lon = (np.array(col) for col in zip(*rows, strict=True))
    out: dict[str, int] = {}
    after = start_ms - 1
    for cid, m in sorted(checkpoints, key=lambda c: c[1]):
        c_lat, c_lon = course.position_at(m)
        near = (t > after) & (haversine_m(lat, lon, np.full_like(lat, c_lat),
                                          np.full_like(lon, c_lon)) <= radius_m)
        if near.any():
            after = int(t[int(np.argmax(near))])
            out[cid] = after
    return out
