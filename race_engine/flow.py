"""The race-flow chart's data: each runner's progress over time, thinned for the wire.

A spectator's chart of distance against time for every runner needs a few hundred
points per runner, not every fix; the thinning keeps the first observation past each
``step_m`` of progress plus the latest one, so the line keeps its shape where the
runner moved and the newest point is always exact.
"""

from __future__ import annotations

import numpy as np

from race_engine.runner import RunnerState


def track(r: RunnerState, step_m: float = 250.0) -> list[list[float]]:
    """``[[elapsed_s, progress_m], ...]`` from the start, one point per ``step_m``.

    Raises:
        ValueError: ``step_m`` is not positive.
    """
    if not step_m > 0:
        raise ValueError(f"step_m must be positive, got {step_m}")
    n = len(r.a_t)
    if not n:
        return [[0.0, 0.0]]
    # The envelope never decreases, so an observation is the first past a step exactly
    # when its step number is above its predecessor's (the start counts as step 0).
    m = np.frombuffer(r.a_m, dtype=np.float64)
    step = np.floor(m / step_m)
    keep = np.flatnonzero(step > np.concatenate(([0.0], step[:-1])))
    if not keep.size or keep[-1] != n - 1:
        keep = np.append(keep, n - 1)
    t = (np.frombuffer(r.a_t, dtype=np.int64)[keep] - r.layout.start_ms) / 1000.0
    pts: list[list[float]] = np.column_stack((t, m[keep])).round(1).tolist()
    return [[0.0, 0.0], *pts]
