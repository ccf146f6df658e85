"""Projections: record-ratio model with fatigue, the last-segment baseline, bands."""

from __future__ import annotations

import pytest

from race_engine.projections import (
    EFFORT_RATIO,
    FATIGUE_FROM,
    FATIGUE_K,
    LAST_SEGMENT,
    RECORD_RATIO,
    Eta,
    p_by,
    pace_ratio,
    project,
)
from race_engine.record import RecordCurve
from race_engine.runner import Layout, RunnerState

START = 1_800_000_000_000
LAYOUT = Layout(START, ("start", "a", "finish"), (0.0, 2000.0, 4000.0),
                {"start": 0, "a": 1, "finish": 2})
CURVE = RecordCurve([0.0, 4000.0], [0.0, 800.0], "record")  # 0.2 s per metre
TARGETS = [("a", 2000.0), ("finish", 4000.0)]


def at(s: float) -> int:
    return START + round(s * 1000)


def runner(*obs: tuple[float, float]) -> RunnerState:
    r = RunnerState("1", LAYOUT)
    for s, p in obs:
        r.add_fix(at(s), p, 5.0, 43.0, -2.0)
    return r


def test_record_ratio_projects_the_runner_ratio_with_fatigue() -> None:
    r = runner((300, 1000.0), (600, 2000.0), (900, 3000.0))  # 1.5x the reference
    assert pace_ratio(r, CURVE, at(900), 3000.0) == pytest.approx(1.5)
    (eta,) = project(r, CURVE, TARGETS, at(900), 4000.0)
    # The back of a field fades more than the reference: the ratio drifts up by
    # FATIGUE_K per unit of ratio beyond FATIGUE_FROM, per course length ahead.
    f = FATIGUE_K * (1.5 - FATIGUE_FROM)
    remaining = 1.5 * (1 + f * 0.5 * 1000 / 4000) * 200.0
    assert eta.target == "finish" and eta.model == RECORD_RATIO
    assert eta.t_ms == pytest.approx(at(900 + remaining), abs=1)
    assert remaining > 1.5 * 200.0  # slower than its pace so far
    assert eta.p10_ms < eta.t_ms < eta.p90_ms


def test_a_runner_near_the_reference_s_pace_fades_no_more_than_it() -> None:
    r = runner((150, 1000.0), (300, 2000.0), (450, 3000.0))  # 0.75x: faster than it
    (eta,) = project(r, CURVE, TARGETS, at(450), 4000.0)
    assert eta.t_ms == pytest.approx(at(450 + 0.75 * 200.0), abs=1)


def test_recent_pace_weighs_in() -> None:
    # 1.5x for 2 km, then 3x over the last 2 km: the projection is slower than 1.5x.
    r = runner((300, 1000.0), (600, 2000.0), (1200, 3000.0), (1800, 4000.0 - 1))
    ratio = pace_ratio(r, CURVE, at(1800), 3999.0)
    assert 1800 / 800 < ratio < 3.0


def test_band_widens_with_remaining_distance() -> None:
    r = runner((300, 1000.0))
    near, far = project(r, CURVE, TARGETS, at(300), 4000.0)
    assert near.p90_ms - near.p10_ms < far.p90_ms - far.p10_ms
    # Close to a target the band keeps an absolute width (position and timing noise).
    (last,) = project(runner((300, 1000.0), (1100, 3950.0)), CURVE, TARGETS, at(1100), 4000.0)
    assert last.p90_ms - last.p10_ms > 2 * 60_000


def test_baseline_uses_the_last_segment_speed() -> None:
    r = runner((300, 1000.0), (600, 2000.0), (1200, 3000.0))
    (eta,) = project(r, CURVE, TARGETS, at(1200), 4000.0, model=LAST_SEGMENT)
    # The last segment start -> a took 600 s for 2000 m: 1000 m left is 300 s.
    assert eta.model == LAST_SEGMENT and eta.t_ms == at(1500)


def test_effort_reference_is_named_as_such() -> None:
    r = runner((300, 1000.0))
    etas = project(r, RecordCurve([0.0, 4000.0], [0.0, 1000.0], "effort"), TARGETS,
                   at(300), 4000.0)
    assert {e.model for e in etas} == {EFFORT_RATIO}


def test_no_eta_is_before_now() -> None:
    r = runner((300, 1000.0))
    etas = project(r, CURVE, TARGETS, at(5000), 4000.0)
    assert all(e.p10_ms >= at(5000) for e in etas)


def test_too_early_to_project_and_unknown_model() -> None:
    assert project(runner((60, 200.0)), CURVE, TARGETS, at(60), 4000.0) == []
    with pytest.raises(ValueError, match="unknown projection model 'magic'"):
        project(runner(), CURVE, TARGETS, at(60), 4000.0, model="magic")


def test_the_chance_of_arriving_by_a_time_reads_the_band() -> None:
    eta = Eta("finish", at(1000), at(900), at(1200), RECORD_RATIO)
    assert p_by(eta, at(900)) == pytest.approx(0.1, abs=1e-4)  # Z90 to 4 digits
    assert p_by(eta, at(1000)) == pytest.approx(0.5)
    assert p_by(eta, at(1200)) == pytest.approx(0.9, abs=1e-4)
    times = [at(s) for s in range(700, 1500, 25)]
    chances = [p_by(eta, t) for t in times]
    assert chances == sorted(chances) and chances[0] < 0.01 and chances[-1] > 0.99
