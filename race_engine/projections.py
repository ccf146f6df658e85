"""Projected finish and checkpoint ETAs, each with an uncertainty band and its model name.

Two models (docs/projections.md explains them and how they compare):

* ``record-ratio`` (the default): the runner's time so far divided by the reference
  curve's time to the same point (race_engine.record), blending the whole race with the
  last ``RECENT_M`` metres; the ratio then drifts up by ``FATIGUE`` per course length
  ahead, because runners fade more than a record holder does. Where a race has no record
  the reference is the effort-distance curve and the model is named ``effort-ratio``.
* ``last-segment-speed`` (the baseline): remaining distance at the speed of the last
  segment between two splits (or of the race so far before the first one).

The band is log-normal around the median remaining time: sigma combines SIGMA_REL of
it with an absolute SIGMA_ABS_S, so the band widens with the distance still to run and
never collapses close to the target; p10 and p90 are the median remaining time scaled
by exp(-/+ 1.2816 sigma). The constants were chosen on a simulated field and checked on
another (docs/projections.md). No ETA is ever before ``now_ms``: a runner not seen for a
while has not arrived yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from race_engine.record import RecordCurve
from race_engine.runner import RunnerState

RECORD_RATIO = "record-ratio"
EFFORT_RATIO = "effort-ratio"
LAST_SEGMENT = "last-segment-speed"
MODELS = (RECORD_RATIO, LAST_SEGMENT)

RECENT_M = 3000.0
RECENT_WEIGHT = 0.15
FATIGUE = 0.15
SIGMA_REL = 0.07
SIGMA_ABS_S = 90.0
Z90 = 1.2816
# Below this much progress there is too little of the race to judge a runner's pace.
MIN_PROGRESS_M = 1000.0


@dataclass(frozen=True, slots=True)
class Eta:
    """A projected arrival at ``target`` (a checkpoint id): median and p10/p90, epoch ms."""

    target: str
    t_ms: int
    p10_ms: int
    p90_ms: int
    model: str

    def to_dict(self, start_ms: int) -> dict[str, object]:
        return {"checkpoint": self.target, "t_ms": self.t_ms, "p10_ms": self.p10_ms,
                "p90_ms": self.p90_ms, "elapsed_s": (self.t_ms - start_ms) / 1000.0,
                "model": self.model}


def project(runner: RunnerState, curve: RecordCurve, targets: Sequence[tuple[str, float]],
            now_ms: int, length_m: float, model: str = RECORD_RATIO) -> list[Eta]:
    """ETAs at ``targets`` ((checkpoint id, metres) ahead of the runner), by ``model``.

    Returns [] when the runner has not yet run ``MIN_PROGRESS_M`` metres.

    Raises:
        ValueError: an unknown model name.
    """
    if model not in MODELS:
        raise ValueError(f"unknown projection model {model!r}; use one of {', '.join(MODELS)}")
    cur = runner.current()
    if cur is None or cur[1] < MIN_PROGRESS_M:
        return []
    t_cur, x = cur
    if model == RECORD_RATIO:
        name = RECORD_RATIO if curve.name == "record" else EFFORT_RATIO
        ratio = pace_ratio(runner, curve, t_cur, x)
        def remaining(d: float) -> float:
            fade = 1.0 + FATIGUE * 0.5 * (d - x) / length_m
            return ratio * fade * (curve.t_at(d) - curve.t_at(x))
    else:
        name = LAST_SEGMENT
        speed = last_segment_speed(runner, t_cur, x)
        def remaining(d: float) -> float:
            return (d - x) / speed
    out = []
    for target, d in targets:
        if d <= x:
            continue
        rem_ms = max(remaining(d), 0.0) * 1000.0
        sigma = band_sigma(rem_ms / 1000.0)
        lo, hi = math.exp(-Z90 * sigma), math.exp(Z90 * sigma)
        out.append(Eta(target, max(now_ms, round(t_cur + rem_ms)),
                       max(now_ms, round(t_cur + rem_ms * lo)),
                       max(now_ms, round(t_cur + rem_ms * hi)), name))
    return out


def band_sigma(remaining_s: float) -> float:
    """Log-space sigma of a remaining time: SIGMA_REL of it, combined with an absolute
    SIGMA_ABS_S (position and timing noise) that dominates close to the target."""
    return math.hypot(SIGMA_REL, SIGMA_ABS_S / max(remaining_s, 1.0))


def pace_ratio(runner: RunnerState, curve: RecordCurve, t_cur: int, x: float) -> float:
    """Runner's time over the reference time to ``x``: whole race blended with the last
    ``RECENT_M`` metres (RECENT_WEIGHT on the recent part)."""
    start = runner.layout.start_ms
    ref = curve.t_at(x)
    whole = (t_cur - start) / 1000.0 / ref if ref > 0 else 1.0
    x0 = x - RECENT_M
    if x0 <= 0.0:
        return whole
    t0 = runner.time_at(x0)
    ref_recent = ref - curve.t_at(x0)
    if t0 is None or ref_recent < 60.0:
        return whole
    recent = (t_cur - t0) / 1000.0 / ref_recent
    return RECENT_WEIGHT * recent + (1.0 - RECENT_WEIGHT) * whole


def last_segment_speed(runner: RunnerState, t_cur: int, x: float) -> float:
    """Metres per second over the last segment between two splits before ``x``, or over
    the race so far when fewer than two splits are behind the runner."""
    start = float(runner.layout.start_ms)
    splits = [(runner.layout.m[runner.layout.index[s.checkpoint]], float(s.t_ms))
              for s in runner.splits()]
    behind = [(d, t) for d, t in splits if d <= x]
    if len(behind) >= 2 and behind[-1][1] > behind[-2][1]:
        (d0, t0), (d1, t1) = behind[-2], behind[-1]
        return max((d1 - d0) / ((t1 - t0) / 1000.0), 0.1)
    return max(x / max((t_cur - start) / 1000.0, 1.0), 0.1)
