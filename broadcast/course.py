"""The course as the pages draw it: map line, checkpoints, danger zones, profile.

Built once per race from the race folder: about 500 points along the course (evenly
spaced by distance, the start and finish kept), the checkpoints with their km, name and
cutoff, the danger zones by km, and the elevation profile every 100 m.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from race_engine.model import Checkpoint, Race

POINTS = 500
PROFILE_STEP_M = 100.0


def course_payload(race: Race, points: int = POINTS) -> dict[str, Any]:
    """The JSON body of ``GET /api/v1/races/{race}/course``."""
    course = race.course
    n = len(course.dist)
    idx = np.arange(n)
    if n > points:  # the first course point at or past each of ``points`` even distances
        targets = np.linspace(0.0, course.length_m, points)
        idx = np.unique(np.clip(np.searchsorted(course.dist, targets), 0, n - 1))
    dist, ele = course.profile(PROFILE_STEP_M)
    ascent, descent = course.total_climb()
    return {
        "race": race.id,
        "name": race.name,
        "length_m": round(float(course.length_m), 1),
        "climb_m": round(float(ascent), 1),
        "descent_m": round(float(descent), 1),
        "has_elevation": bool(course.has_elevation),
        "points": [_point(course, int(i)) for i in idx],
        "checkpoints": [_checkpoint(race, cp) for cp in race.checkpoints],
        "danger_zones": [{"id": z.id, "name": z.name, "from_km": round(z.km_from, 3),
                          "to_km": round(z.km_to, 3)} for z in race.danger_zones],
        "profile": {"step_m": PROFILE_STEP_M, "dist_m": [round(float(d), 1) for d in dist],
                    "ele": [round(float(e), 1) for e in ele]},
    }


def race_summary(race: Race) -> dict[str, Any]:
    """What ``GET /api/v1/config`` says of a race."""
    return {"id": race.id, "name": race.name, "start_ms": race.start_ms,
            "timezone": race.timezone, "time_limit_s": race.time_limit_s,
            "length_m": round(float(race.course.length_m), 1),
            "checkpoints": [{"id": cp.id, "name": cp.name, "km": round(cp.km, 3)}
                            for cp in race.checkpoints],
            "entrants": len(race.entrants)}


def _point(course: Any, i: int) -> dict[str, float]:
    return {"lat": round(float(course.lat[i]), 6), "lon": round(float(course.lon[i]), 6),
            "ele": round(float(course.ele[i]), 1), "dist_m": round(float(course.dist[i]), 1)}


def _checkpoint(race: Race, cp: Checkpoint) -> dict[str, Any]:
    cutoff_ms = None if cp.cutoff_s is None else race.start_ms + int(cp.cutoff_s * 1000)
    return {"id": cp.id, "name": cp.name, "km": round(cp.km, 3), "cutoff_s": cp.cutoff_s,
            "cutoff_ms": cutoff_ms}
