"""Projected finish and checkpoint ETAs, each with an uncertainty band and its model name.

Two models (docs/projections.md explains them and how they compare):

* ``record-ratio`` (the default): the runner's time so far divided by the reference
  curve's time to the same point (race_engine.record), blending the whole race with the
  last ``RECENT_M`` metres; the ratio then drifts up per course length ahead, the more
  the slower the runner (``fade``): the back of a field fades more than a record holder
  does, its front no more. Where a race has no record
  the reference is the effort-distance curve and the model is named ``effort-ratio``.
* ``last-segment-speed`` (the baseline): remaining distance at the speed of the last
  segment between two splits (or of the race so far before the first one).

The band around the median remaining time adds in quadrature a log-normal relative part
(SIGMA_REL, p10/p90 at exp(-/+ 1.2816 sigma)) and an absolute SIGMA_ABS_S of position
and timing noise, so it widens with the distance still to run, never collapses close to
the target, and stays finite there (a purely multiplicative band exploded).
The constants were chosen on a simulated field and checked on
another (docs/projections.md). No ETA is ever before ``now_ms``: a runner not seen for a
while has not arrived yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from race_engine.record import RecordCurve
from race_engine.runner import Layout, RunnerState

RECORD_RATIO = "record-ratio"
EFFORT_RATIO = "effort-ratio"
LAST_SEGMENT = "last-segment-speed"
MODELS = (RECORD_RATIO, LAST_SEGMENT)

RECENT_M = 3000.0
RECENT_WEIGHT = 0.15
# Fatigue beyond the reference's own (``fade``): none for a runner within FATIGUE_FROM
# of the reference's pace (the record curve already holds the record holder's fade),
# then the ratio drifts up by FATIGUE_K per unit of pace ratio beyond it, per course
# length ahead: the back of a field fades more than its front.
FATIGUE_FROM = 1.44
FATIGUE_K = 0.8
SIGMA_REL = 0.07
SIGMA_ABS_S = 90.0
Z90 = 1.2816
# Below this much progress there is too little of the race to judge a runner's pace.
MIN_PROGRESS_M = 1000.0
# A running runner's position now is its latest progress moved forward at its own pace
# relative to the reference curve (``moved_forward``), for at most ESTIMATE_MAX_MS of
# silence and never past the next checkpoint; after ESTIMATE_AFTER_MS of silence it is
# shown as estimated (within a minute the move is at most a few hundred metres).
ESTIMATE_AFTER_MS = 60_000
ESTIMATE_MAX_MS = 30 * 60_000


class Track(Protocol):
    """What a pace needs of a runner: a ``RunnerState`` or a ``RunnerSummary``."""

    @property
    def layout(self) -> Layout: ...

    def time_at(self, d: float) -> float | None: ...


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
            return ratio * fade(ratio, x / length_m, d / length_m) \
                * (curve.t_at(d) - curve.t_at(x))
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
        below, above = band_ms(rem_ms)
        out.append(Eta(target, max(now_ms, round(t_cur + rem_ms)),
                       max(now_ms, round(t_cur + rem_ms - below)),
                       max(now_ms, round(t_cur + rem_ms + above)), name))
    return out


def p_by(eta: Eta, t_ms: float) -> float:
    """The probability that the runner arrives at ``eta``'s target by ``t_ms``: the band
    read as a two-piece normal, median ``t_ms`` of the ETA, with p10 and p90 at -/+
    Z90 sigma on each side (so it is 0.1 at p10 and 0.9 at p90)."""
    late = t_ms >= eta.t_ms
    sigma = (eta.p90_ms - eta.t_ms if late else eta.t_ms - eta.p10_ms) / Z90
    if sigma <= 0.0:
        return 1.0 if late else 0.0
    return 0.5 * (1.0 + math.erf((t_ms - eta.t_ms) / sigma / math.sqrt(2.0)))


def fade(ratio: float, u: float, v: float) -> float:
    """How much slower than its pace so far (``ratio``) a runner goes from ``u`` to
    ``v`` (shares of the course): its ratio drifts up by F = FATIGUE_K * (ratio -
    FATIGUE_FROM) (0 below it) per course length, so over the stretch by F times half
    its length (the drift at its middle)."""
    f = FATIGUE_K * max(ratio - FATIGUE_FROM, 0.0)
    return 1.0 + f * 0.5 * (v - u)


def band_ms(rem_ms: float) -> tuple[float, float]:
    """How far below and above a remaining time its p10 and p90 lie (ms): the relative
    log-normal part (SIGMA_REL) and the absolute noise (SIGMA_ABS_S) added in quadrature,
    so the band stays finite however close the target is."""
    abs_ms = Z90 * SIGMA_ABS_S * 1000.0
    below = math.hypot(rem_ms * (1.0 - math.exp(-Z90 * SIGMA_REL)), abs_ms)
    above = math.hypot(rem_ms * (math.exp(Z90 * SIGMA_REL) - 1.0), abs_ms)
    return min(below, rem_ms), above


def moved_forward(runner: Track, curve: RecordCurve, t_cur: float, x: float,
                  at_ms: float) -> float:
    """Where a runner last at ``x`` metres at ``t_cur`` (epoch ms) is at ``at_ms``: moved
    forward at its pace ratio (``pace_ratio``) along the reference curve, for at most
    ESTIMATE_MAX_MS and never past the next checkpoint; ``x`` itself before
    MIN_PROGRESS_M, or when ``at_ms`` is not after ``t_cur``."""
    quiet = at_ms - t_cur
    if quiet <= 0 or x < MIN_PROGRESS_M:
        return x
    ratio = pace_ratio(runner, curve, t_cur, x)
    ref = curve.t_at(x) + min(quiet, ESTIMATE_MAX_MS) / 1000.0 / max(ratio, 0.1)
    layout = runner.layout
    nxt = next((m for m in layout.m if m > x), layout.m[-1])
    return max(x, min(curve.d_at(ref), nxt))


def pace_ratio(runner: Track, curve: RecordCurve, t_cur: float, x: float) -> float:
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
