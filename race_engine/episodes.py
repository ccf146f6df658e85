"""Stops and excursions seen only in late fixes, sans-I/O.

The alert rules (race_engine.alerts) judge a runner's latest state. A tracker that
flushes a coverage hole sends twenty minutes of fixes at once: a runner who stood still
for twelve of them, or wandered off the course and back, is moving on the course again
by the latest fix, so no evaluation at any moment sees the stop or the excursion. Race
control still needs to know (an injury, a wrong turn on a ridge in fog). ``episodes``
looks for them in the fixes of one span, the span a batch of fixes just filled, with the
same thresholds and the same raise times the live rules would have used.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from race_engine.alerts import MIN_MS, STOPPED_MOVE_M, Alert, Rules, make_alerts
from race_engine.model import Status
from race_engine.runner import RunnerState

Found = tuple[str, str | None, int, str]  # kind, subject, raised_ms, message


def episodes(r: RunnerState, rules: Rules, t_lo: int, t_hi: int) -> list[Alert]:
    """The longest stop and the longest off-course run that held at some fix time in
    ``[t_lo, t_hi]``, as alerts (with where the runner was then); none for a runner who
    is not running."""
    if r.status is not Status.RUNNING:
        return []
    return _stop(r, rules, t_lo, t_hi) + _excursion(r, rules, t_lo, t_hi)


def _stop(r: RunnerState, rules: Rules, t_lo: int, t_hi: int) -> list[Alert]:
    """As the ``stopped`` rule: at observation k, the first observation at or past
    ``STOPPED_MOVE_M`` behind it is at least ``stopped_min`` older."""
    a_t, a_m = r.a_t, r.a_m
    end_m = r.layout.m[-1] if r.layout.m else float("inf")
    best: tuple[int, int, float] | None = None  # (since, at, progress)
    for k in range(bisect_left(a_t, t_lo), bisect_right(a_t, t_hi)):
        if a_m[k] >= end_m:
            break
        since = a_t[bisect_left(a_m, a_m[k] - STOPPED_MOVE_M)]
        if best is None or a_t[k] - since > best[1] - best[0]:
            best = (since, a_t[k], a_m[k])
    need = rules.thresholds.stopped_min * MIN_MS
    if best is None or best[1] - best[0] < need:
        return []
    since, at, x = best
    lat, lon = rules.course.position_at(x)
    found: Found = ("stopped", None, int(since + need),
                    f"no progress for {(at - since) / MIN_MS:.0f} min at km {x / 1000:.1f} "
                    f"(found in fixes received together)")
    return make_alerts(rules, r.bib, [found], x, lat, lon)


def _excursion(r: RunnerState, rules: Rules, t_lo: int, t_hi: int) -> list[Alert]:
    """As the ``off_course`` rule: an unbroken run of fixes beyond ``off_course_m`` that
    lasted ``off_course_s``."""
    f_t, f_off = r.f_t, r.f_off
    limit = rules.thresholds.off_course_m
    i, i1 = bisect_left(f_t, t_lo), bisect_right(f_t, t_hi)
    best: tuple[int, int] | None = None  # first and last fix of the run
    while i < i1:
        if not f_off[i] > limit:
            i += 1
            continue
        s, e = i, i
        while s > 0 and f_off[s - 1] > limit:
            s -= 1
        while e + 1 < len(f_t) and f_off[e + 1] > limit:
            e += 1
        if best is None or f_t[e] - f_t[s] > f_t[best[1]] - f_t[best[0]]:
            best = (s, e)
        i = e + 1
    need = rules.thresholds.off_course_s * 1000
    if best is None or f_t[best[1]] - f_t[best[0]] < need:
        return []
    s, e = best
    far = max(range(s, e + 1), key=lambda j: f_off[j])
    found: Found = ("off_course", None, int(f_t[s] + need),
                    f"{f_off[far]:.0f} m off the course for "
                    f"{(f_t[e] - f_t[s]) / MIN_MS:.0f} min (found in fixes received together)")
    return make_alerts(rules, r.bib, [found], r.f_p[far], r.f_lat[far], r.f_lon[far])
