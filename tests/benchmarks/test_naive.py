"""The benchmarks' tracker methods: first matched fix past each checkpoint, and the
first fix inside a circle around it (geofence)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from race_engine.course import Course
from race_engine.racefolder import load_course

ROOT = Path(__file__).resolve().parents[2]
M_PER_DEG = 111_195.0
START = 1_779_000_000_000


def _load_naive() -> ModuleType:
    # benchmarks/ is a folder of scripts, not a package: load the module from its file.
    spec = importlib.util.spec_from_file_location("naive", ROOT / "benchmarks" / "naive.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


naive = _load_naive()


@pytest.fixture(scope="module")
def line() -> Course:
    """3 km due north, a point every 10 m."""
    north = np.arange(0, 3001, 10.0)
    return Course.from_points(43.0 + north / M_PER_DEG, np.full(north.size, -2.0))


def at(north_m: float, east_m: float = 0.0) -> tuple[float, float]:
    return 43.0 + north_m / M_PER_DEG, -2.0 + east_m / (M_PER_DEG * np.cos(np.radians(43.0)))


def fix(t_s: float, north_m: float, east_m: float = 0.0) -> tuple[int, float, float]:
    return (START + round(t_s * 1000), *at(north_m, east_m))


def test_split_is_the_first_fix_past_the_checkpoint_not_interpolated(line: Course) -> None:
    fixes = [fix(0, 0), fix(100, 400), fix(200, 980), fix(300, 1120), fix(400, 1500)]
    got = naive.naive_splits(line, [("start", 0.0), ("cp1", 1000.0)], fixes, START)
    assert got == {"start": START, "cp1": START + 300_000}


def test_fixes_are_taken_in_event_time_order_and_retries_ignored(line: Course) -> None:
    fixes = [fix(300, 1120), fix(100, 400), fix(200, 980), fix(300, 1120), fix(250, 1010)]
    got = naive.naive_splits(line, [("cp1", 1000.0)], fixes, START)
    assert got == {"cp1": START + 250_000}
    prog = naive.naive_progress(line, fixes, START)
    assert [t for t, _ in prog] == sorted({f[0] for f in fixes})
    assert prog[-1][1] == pytest.approx(1120.0, abs=1.0)


def test_a_noisy_fix_counts_as_it_is_matched(line: Course) -> None:
    # 30 m off to the side and 10 m past the checkpoint: the naive method takes it.
    fixes = [fix(100, 900), fix(110, 1010, east_m=30.0), fix(120, 990)]
    got = naive.naive_splits(line, [("cp1", 1000.0)], fixes, START)
    assert got == {"cp1": START + 110_000}


def test_fixes_before_the_gun_and_unreached_checkpoints_give_no_split(line: Course) -> None:
    fixes = [fix(-120, 0), fix(-60, 5), fix(30, 50), fix(600, 1900)]
    cps = [("start", 0.0), ("cp1", 1000.0), ("cp2", 2000.0), ("finish", 5000.0)]
    got = naive.naive_splits(line, cps, fixes, START)
    assert got == {"start": START + 30_000, "cp1": START + 600_000}


def test_a_checkpoint_beyond_the_course_is_reached_at_its_end(line: Course) -> None:
    fixes = [fix(0, 0), fix(400, 1400), fix(800, 2800), fix(900, 3010)]
    got = naive.naive_splits(line, [("finish", 3100.0)], fixes, START)
    assert got == {"finish": START + 900_000}


def test_matching_follows_the_runner_where_start_and_finish_share_a_street() -> None:
    course = load_course(ROOT / "races" / "zegama-2026" / "course.gpx")
    near_finish = course.position_at(course.length_m - 5.0)
    early = [(START + 60_000, *near_finish)]
    # One fix near the finish a minute after the gun is matched near the start.
    assert naive.naive_splits(course, [("finish", course.length_m)], early, START) == {}
    stops = [0.0, 8_000.0, 16_000.0, 24_000.0, 32_000.0, 40_000.0, course.length_m]
    fixes = [(START + k * 1_500_000, *course.position_at(p)) for k, p in enumerate(stops)]
    prog = naive.naive_progress(course, fixes, START)
    assert [p for _, p in prog] == pytest.approx(stops, abs=1.0)
    got = naive.naive_splits(course, [("finish", course.length_m)], fixes, START)
    assert got == {"finish": fixes[-1][0]}


def test_a_runner_standing_on_the_checkpoint_has_reached_it(line: Course) -> None:
    fixes = [fix(100, 900), fix(110, 998.0), fix(120, 999.5), fix(130, 1000.0)]
    got = naive.naive_splits(line, [("cp1", 1000.0)], fixes, START)
    assert got == {"cp1": START + 120_000}


def test_geofence_split_is_the_first_raw_fix_inside_the_circle(line: Course) -> None:
    # 25 m short of the checkpoint is inside a 30 m circle: the geofence fires before the
    # runner gets there, where the first-fix-past method waits for the fix past it.
    fixes = [fix(0, 0), fix(100, 940), fix(110, 975), fix(120, 1005), fix(130, 1040)]
    cps = [("cp1", 1000.0)]
    assert naive.geofence_splits(line, cps, fixes, START) == {"cp1": START + 110_000}
    assert naive.naive_splits(line, cps, fixes, START) == {"cp1": START + 120_000}
    assert naive.geofence_splits(line, cps, fixes, START, radius_m=70.0) == {
        "cp1": START + 100_000}


def test_geofence_uses_the_raw_position_not_the_matched_one(line: Course) -> None:
    # 35 m to the side, level with the checkpoint: matched onto it, but outside the circle.
    fixes = [fix(100, 1000, east_m=35.0), fix(110, 1010, east_m=20.0)]
    assert naive.geofence_splits(line, [("cp1", 1000.0)], fixes, START) == {
        "cp1": START + 110_000}


def test_geofence_takes_checkpoints_in_order_and_skips_a_missed_one(line: Course) -> None:
    cps = [("finish", 3000.0), ("cp1", 1000.0), ("cp2", 2000.0)]  # sorted by distance
    # cp1's circle is jumped over (a fix 50 m before, the next 60 m after); the fix on
    # cp1 before the gun does not count.
    fixes = [fix(-10, 1000), fix(100, 950), fix(120, 1060), fix(300, 1990), fix(400, 2010),
             fix(700, 2995)]
    assert naive.geofence_splits(line, cps, fixes, START) == {
        "cp2": START + 300_000, "finish": START + 700_000}
    assert naive.geofence_splits(line, cps, [], START) == {}


def test_geofence_finish_on_the_start_line_is_searched_after_the_checkpoints_before() -> None:
    course = load_course(ROOT / "races" / "zegama-2026" / "course.gpx")
    cps = [("start", 0.0), ("mid", 20_000.0), ("finish", course.length_m)]
    fixes = [(START + k * 10_000, *course.position_at(5.0 * k)) for k in range(5)]
    fixes += [(START + 9_000_000, *course.position_at(20_000.0)),
              (START + 20_000_000, *course.position_at(course.length_m - 10.0))]
    assert naive.geofence_splits(course, cps, fixes, START) == {
        "start": START, "mid": START + 9_000_000, "finish": START + 20_000_000}


def test_geofence_radius_must_be_positive(line: Course) -> None:
    with pytest.raises(ValueError, match="radius"):
        naive.geofence_splits(line, [("cp1", 1000.0)], [fix(0, 0)], START, radius_m=0.0)
