"""Stops and excursions wholly inside a span of fixes that arrived together."""

from __future__ import annotations

import numpy as np

from race_engine.alerts import AlertThresholds, Rules, evaluate
from race_engine.course import Course
from race_engine.episodes import episodes
from race_engine.model import Status
from race_engine.runner import Layout, RunnerState

START = 1_800_000_000_000
MIN = 60_000
COURSE = Course.from_points(43.0 + np.linspace(0, 5000 / 111_195.0, 101), np.full(101, -2.3))
LAYOUT = Layout(START, ("start", "finish"), (0.0, COURSE.length_m), {"start": 0, "finish": 1})
RULES = Rules("zeg", COURSE, AlertThresholds(), (), ())  # stopped 8 min, off 120 s at 150 m


def at(minutes: float) -> int:
    return START + round(minutes * MIN)


def burst(stop_min: float, off: float = 5.0) -> RunnerState:
    """A fix a minute: running to 1,000 m, standing ``stop_min`` minutes (``off`` metres
    from the course), then running on."""
    r = RunnerState("9", LAYOUT)
    m = 0.0
    for k in range(40):
        t = at(k)
        standing = 10 <= k < 10 + stop_min
        r.add_fix(t, m, off if standing else 5.0, 43.0, -2.3)
        m += 0.0 if standing else 100.0
    return r


def test_a_stop_inside_the_span_is_found_with_the_live_rule_s_raise_time() -> None:
    r = burst(12)
    assert "stopped" not in {a.kind for a in evaluate(r, RULES, at(40))}  # moving again
    (a,) = episodes(r, RULES, at(0), at(39))
    assert a.kind == "stopped" and a.raised_ms == at(10 + 8)  # at 1,000 m from 10 min on
    assert abs(a.progress_m - 1000.0) < 1e-6 and "12 min" in a.message


def test_a_short_stop_or_a_span_that_misses_it_is_nothing() -> None:
    assert episodes(burst(6), RULES, at(0), at(39)) == []
    assert episodes(burst(12), RULES, at(30), at(39)) == []


def test_an_excursion_inside_the_span_is_found_where_it_was() -> None:
    r = burst(5, off=400.0)  # 4 min beyond 150 m (fixes at 10..14)
    (a,) = [a for a in episodes(r, RULES, at(12), at(20)) if a.kind == "off_course"]
    assert a.raised_ms == at(10) + 120_000 and "400 m off" in a.message
    assert [a for a in episodes(burst(1, off=400.0), RULES, at(0), at(39))] == []


def test_a_runner_out_of_the_race_has_no_episodes() -> None:
    r = burst(12)
    r.set_status(Status.DNF, "cold", at(39))
    assert episodes(r, RULES, at(0), at(39)) == []
