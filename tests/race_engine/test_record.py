"""Record-pace reference curve: exact through the record splits, shaped by climb."""

from __future__ import annotations

import numpy as np
import pytest

from race_engine.course import Course
from race_engine.model import AlertThresholds, Checkpoint, Race, RecordSplit
from race_engine.record import K_UP, RecordCurve, fmt_delta


def course(ele: list[float] | None) -> Course:
    """A straight 10 km course north; ``ele`` sampled evenly along it, or flat."""
    n = 201
    lat = 43.0 + np.linspace(0.0, 10_000 / 111_195.0, n)
    lon = np.full(n, -2.3)
    e = None if ele is None else np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(ele)), ele)
    return Course.from_points(lat, lon, e)


def race(c: Course, record: tuple[RecordSplit, ...]) -> Race:
    length_km = c.length_m / 1000
    cps = (Checkpoint("start", "Start", 0.0), Checkpoint("mid", "Mid", length_km / 2),
           Checkpoint("finish", "Finish", length_km))
    return Race("r", "R", 0, "UTC", 36_000.0, c, cps, record, (), AlertThresholds(), ())


def test_curve_passes_exactly_through_every_record_split() -> None:
    c = course([300, 900, 500, 1200, 300])
    r = race(c, (RecordSplit("mid", 2400.0), RecordSplit("finish", 4000.0)))
    curve = RecordCurve.from_race(r)
    assert curve.name == "record"
    assert curve.t_at(0.0) == 0.0
    assert curve.t_at(c.length_m / 2) == pytest.approx(2400.0, abs=1e-6)
    assert curve.t_at(c.length_m) == pytest.approx(4000.0, abs=1e-6)
    assert np.all(np.diff(curve.t_s) > 0)


def test_climbing_half_costs_more_time_than_the_flat_half() -> None:
    # Climb 800 m over the first 5 km, then flat: with only the finish known, the
    # reference reaches half distance well after half the time.
    c = course([300, 1100, 1100])
    curve = RecordCurve.from_race(race(c, (RecordSplit("finish", 4000.0),)))
    half = c.length_m / 2
    effort_first = half + K_UP * 800
    expected = 4000.0 * effort_first / (effort_first + half)
    assert curve.t_at(half) == pytest.approx(expected, rel=0.02)


def test_flat_course_is_linear_between_splits() -> None:
    c = course(None)
    curve = RecordCurve.from_race(race(c, (RecordSplit("finish", 3000.0),)))
    assert curve.t_at(c.length_m / 4) == pytest.approx(750.0, rel=1e-6)
    assert curve.d_at(1500.0) == pytest.approx(c.length_m / 2, rel=1e-6)


def test_race_without_record_gets_an_effort_curve() -> None:
    c = course(None)
    curve = RecordCurve.from_race(race(c, ()))
    assert curve.name == "effort"
    assert curve.t_at(3000.0) == pytest.approx(1000.0, rel=1e-6)


def test_record_split_at_unknown_checkpoint_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown checkpoint 'nowhere'"):
        RecordCurve.from_race(race(course(None), (RecordSplit("nowhere", 10.0),)))


def test_delta_and_its_format() -> None:
    curve = RecordCurve.from_race(race(course(None), (RecordSplit("finish", 3000.0),)))
    assert curve.delta_s(1572.0, 5000.0 * curve.d[-1] / 10_000) == pytest.approx(72.0, abs=0.5)
    assert fmt_delta(72.4) == "+1:12"
    assert fmt_delta(-5.0) == "-0:05"
    assert fmt_delta(3723.0) == "+1:02:03"
