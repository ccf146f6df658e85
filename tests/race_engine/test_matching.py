from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from race_engine.course import Course
from race_engine.matching import Match, match, match_many
from race_engine.racefolder import load_course

ROOT = Path(__file__).resolve().parents[2]
M_PER_DEG = 111_195.0


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point north_m / east_m metres away from (lat, lon)."""
    return (lat + north_m / M_PER_DEG,
            lon + east_m / (M_PER_DEG * np.cos(np.radians(lat))))


@pytest.fixture(scope="module")
def zegama() -> Course:
    return load_course(ROOT / "races" / "zegama-2026" / "course.gpx")


@pytest.fixture(scope="module")
def hairpin() -> Course:
    """1 km north, a tight turn, 1 km back south 10 m to the east (every 10 m)."""
    up = np.arange(0, 1001, 10.0)
    north = np.concatenate((up, up[::-1]))
    east = np.concatenate((np.zeros(up.size), np.full(up.size, 10.0)))
    lat, lon = offset(43.0, -2.0, north, east)
    return Course.from_points(lat, lon)


def test_a_fix_on_the_course_matches_exactly(zegama: Course) -> None:
    lat, lon = zegama.position_at(12_345.0)
    m = match(zegama, lat, lon, 12_000.0)
    assert isinstance(m, Match)
    assert m.progress_m == pytest.approx(12_345.0, abs=0.5)
    assert m.off_m < 0.5


def test_gps_noise_moves_progress_a_little(zegama: Course) -> None:
    rng = np.random.default_rng(7)
    errors, offs = [], []
    for true in np.arange(600.0, zegama.length_m - 600, 250.0):
        lat, lon = zegama.position_at(true)
        r, a = rng.uniform(10, 20), rng.uniform(0, 2 * np.pi)
        lat, lon = offset(lat, lon, r * np.cos(a), r * np.sin(a))
        m = match(zegama, lat, lon, true - 60.0)
        errors.append(abs(m.progress_m - true))
        offs.append(m.off_m)
    assert np.median(errors) < 15
    assert max(errors) < 40  # never a jump to another part of the course
    assert max(offs) <= 20.5


def test_a_far_outlier_has_a_large_off_distance(zegama: Course) -> None:
    lat, lon = zegama.position_at(10_000.0)
    lat, lon = offset(lat, lon, 2000.0, 0.0)
    m = match(zegama, lat, lon, 10_000.0)
    assert m.off_m > 1000
    assert 9_700 <= m.progress_m <= 13_000  # still inside the window


def test_shared_street_at_the_start_stays_at_the_start(zegama: Course) -> None:
    lat, lon = zegama.position_at(200.0)
    lat, lon = offset(lat, lon, 3.0, -4.0)
    # Even with a window spanning the whole course (e.g. after a long coverage hole),
    # the start of the street wins over the finish of the same street.
    for ahead in (3000.0, 45_000.0):
        m = match(zegama, lat, lon, 100.0, ahead_m=ahead)
        assert m.progress_m == pytest.approx(200.0, abs=15)
    assert match(zegama, lat, lon, None).progress_m == pytest.approx(200.0, abs=15)


def test_shared_street_near_the_finish_matches_the_finish(zegama: Course) -> None:
    target = zegama.length_m - 200.0
    lat, lon = zegama.position_at(target)
    m = match(zegama, lat, lon, 41_800.0)
    assert m.progress_m == pytest.approx(target, abs=15)
    wide = match(zegama, lat, lon, 41_800.0, behind_m=45_000.0)
    assert wide.progress_m == pytest.approx(target, abs=15)


def test_past_the_finish_clamps_to_the_course(zegama: Course) -> None:
    lat, lon = zegama.position_at(zegama.length_m)
    m = match(zegama, lat, lon, zegama.length_m + 500.0)
    assert m.progress_m == pytest.approx(zegama.length_m, abs=1)


def test_leaving_the_course_and_coming_back(zegama: Course) -> None:
    """A runner walks 300 m off course at km 15 (e.g. to shelter), then returns."""
    base_lat, base_lon = zegama.position_at(15_000.0)
    near = 14_900.0
    track = [0, 50, 150, 300, 300, 150, 50, 0]
    results = []
    for away in track:
        lat, lon = offset(base_lat, base_lon, 0.0, float(away))
        m = match(zegama, lat, lon, near)
        if m.off_m < 50:  # the caller trusts only on-course matches as the new reference
            near = m.progress_m
        results.append(m)
    assert [r.off_m > 100 for r in results] == [a >= 150 for a in track]
    assert results[-1].progress_m == pytest.approx(15_000.0, abs=5)
    assert results[-1].off_m < 1


def test_hairpin_prefers_continuity(hairpin: Course) -> None:
    # On the way up at 500 m, the GPS puts the fix 6 m east: closer to the way back.
    lat, lon = offset(43.0, -2.0, 500.0, 6.0)
    up = match(hairpin, lat, lon, 450.0)
    assert up.progress_m == pytest.approx(500.0, abs=1)
    assert up.off_m == pytest.approx(6.0, abs=0.2)
    # The same fix for a runner already on the way back (progress ~1,500 m).
    back = match(hairpin, lat, lon, 1_450.0)
    assert back.progress_m == pytest.approx(hairpin.length_m - 500.0, abs=1)
    assert back.off_m == pytest.approx(4.0, abs=0.2)


def test_clear_winner_beats_continuity() -> None:
    # A wide U: the legs are 60 m apart, well beyond the 15 m tie band.
    up = np.arange(0, 1001, 10.0)
    lat, lon = offset(43.0, -2.0, np.concatenate((up, up[::-1])),
                      np.concatenate((np.zeros(up.size), np.full(up.size, 60.0))))
    wide_u = Course.from_points(lat, lon)
    fix = offset(43.0, -2.0, 300.0, 58.0)  # on the way back, 2 m off
    m = match(wide_u, fix[0], fix[1], 250.0)
    assert m.off_m == pytest.approx(2.0, abs=0.2)
    assert m.progress_m == pytest.approx(wide_u.length_m - 300.0, abs=1)


def test_window_limits_the_search(hairpin: Course) -> None:
    lat, lon = offset(43.0, -2.0, 800.0, 10.0)  # exactly on the way back at 1,210 m
    m = match(hairpin, lat, lon, 100.0, ahead_m=500.0)  # window 0..600 m: way up only
    assert m.progress_m <= 610
    assert m.off_m > 10


def test_match_many_equals_match(zegama: Course) -> None:
    ds = [1000.0, 5000.0, 20_000.0]
    pts = [zegama.position_at(d) for d in ds]
    nears = [900.0, None, 19_800.0]
    many = match_many(zegama, [p[0] for p in pts], [p[1] for p in pts], nears, ahead_m=6000.0)
    one = [match(zegama, p[0], p[1], n, ahead_m=6000.0) for p, n in zip(pts, nears, strict=True)]
    assert many == one
    with pytest.raises(ValueError):
        match_many(zegama, [43.0], [], [None])


def test_non_finite_fix_raises(zegama: Course) -> None:
    with pytest.raises(ValueError, match="cannot match"):
        match(zegama, float("nan"), -2.3, 100.0)


def test_a_runner_followed_fix_by_fix_stays_on_track(zegama: Course) -> None:
    """Fixes every 30 s at 3.2 m/s with 8 m noise, windowed as the runner state does.

    At a spur (Urbia: in and out on nearly the same path) a single fix is ambiguous and
    may match the other side for one fix; the next fix must bring it back.
    """
    for seed in range(3):
        rng = np.random.default_rng(seed)
        near: float | None = None
        errors = []
        for true in np.arange(0.0, zegama.length_m, 3.2 * 30):
            lat, lon = zegama.position_at(true)
            lat, lon = offset(lat, lon, *rng.normal(0, 8.0, 2))
            m = match(zegama, lat, lon, near, ahead_m=max(500.0, 7.0 * 30))
            errors.append(abs(m.progress_m - true))
            near = m.progress_m
        err = np.array(errors)
        assert np.percentile(err, 99) < 40
        assert err.max() < 250
        assert int((err > 40).sum()) <= 3
        assert err[-1] < 30
