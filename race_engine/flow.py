"""The race-flow chart's data: each runner's progress over time, thinned for the wire.

A spectator's chart of distance against time for every runner needs a few hundred
points per runner, not every fix; the thinning keeps the first observation past each
``step_m`` of progress plus the latest one, so the line keeps its shape where the
runner moved and the newest point is always exact.
"""

from __future__ import annotations

from race_engine.runner import RunnerState


def track(r: RunnerState, step_m: float = 250.0) -> list[list[float]]:
    """``[[elapsed_s, progress_m], ...]`` from the start, one point per ``step_m``.

    Raises:
        ValueError: ``step_m`` is not positive.
    """
    if not step_m > 0:
        raise ValueError(f"step_m must be positive, got {step_m}")
    start = r.layout.start_ms
    out: list[list[float]] = [[0.0, 0.0]]
    next_m = step_m
    n = len(r.a_t)
    for i in range(n):
        m = r.a_m[i]
        if m >= next_m or i == n - 1:
            out.append([round((r.a_t[i] - start) / 1000.0, 1), round(m, 1)])
            next_m = (m // step_m + 1) * step_m
    return out
