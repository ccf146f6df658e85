from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from race_engine.course import Course, course_from_gpx, course_to_gpx, haversine_m
from race_engine.racefolder import RaceFolderError, load_course

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"

# The facts' table: km -> published altitude.
ZEGAMA_ALTITUDES = {0: 296, 7.0: 671, 8.7: 822, 16.1: 1443, 19.6: 969, 22.1: 1528, 23.2: 1551,
                    42.195: 296}


def north_line(n: int = 11, step_deg: float = 0.001, ele: list[float] | None = None) -> Course:
    lat = 43.0 + step_deg * np.arange(n)
    return Course.from_points(lat, np.full(n, -2.0), ele)


def test_distances_start_at_zero_and_increase() -> None:
    c = north_line()
    assert c.dist[0] == 0.0
    assert np.all(np.diff(c.dist) > 0)
    # 0.001 deg of latitude is about 111.2 m
    assert c.length_m == pytest.approx(1112.0, abs=1.0)
    assert c.seg_len.size == len(c) - 1


def test_arrays_are_read_only() -> None:
    c = north_line()
    for a in (c.lat, c.lon, c.ele, c.dist, c.x, c.y, c.seg_len):
        assert a.dtype == np.float64
        with pytest.raises(ValueError):
            a[0] = 1.0


def test_consecutive_duplicates_are_dropped() -> None:
    c = Course.from_points([43.0, 43.0, 43.001, 43.001, 43.002], [-2.0] * 5)
    assert len(c) == 3
    assert np.all(np.diff(c.dist) > 0)


def test_no_elevation_gives_zeros_and_flag() -> None:
    c = north_line()
    assert not c.has_elevation
    assert np.all(c.ele == 0.0)
    assert c.total_climb() == (0.0, 0.0)


def test_missing_elevations_are_interpolated() -> None:
    c = Course.from_points([43.0, 43.001, 43.002], [-2.0] * 3, [100.0, np.nan, 120.0])
    assert c.has_elevation
    assert c.ele[1] == pytest.approx(110.0, abs=0.01)


@pytest.mark.parametrize(
    ("lat", "lon", "message"),
    [
        ([43.0], [-2.0], "at least 2"),
        ([43.0, 43.0], [-2.0, -2.0], "distinct"),
        ([43.0, np.nan], [-2.0, -2.0], "non-finite"),
        ([43.0, 95.0], [-2.0, -2.0], "outside"),
        ([43.0, 43.1], [-2.0], "differ in length"),
    ],
)
def test_bad_points_raise(lat: list[float], lon: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Course.from_points(lat, lon)


def test_position_and_elevation_interpolate_and_clamp() -> None:
    c = north_line(3, ele=[100.0, 200.0, 100.0])
    mid = c.dist[1] / 2
    lat, lon = c.position_at(mid)
    assert lat == pytest.approx(43.0005, abs=1e-7)
    assert lon == pytest.approx(-2.0)
    assert c.elevation_at(mid) == pytest.approx(150.0)
    assert c.position_at(-50.0) == (43.0, -2.0)
    assert c.position_at(c.length_m + 1000) == pytest.approx((43.002, -2.0))


def test_climb_is_additive_and_ordered() -> None:
    ele = [100, 180, 260, 200, 150, 300, 320, 100, 90, 95, 100]
    c = north_line(11, step_deg=0.01, ele=[float(e) for e in ele])  # 1.1 km legs
    a, b, end = 2000.0, 6000.0, c.length_m
    up1, down1 = c.climb_between(0, a)
    up2, down2 = c.climb_between(a, b)
    up3, down3 = c.climb_between(b, end)
    total_up, total_down = c.total_climb()
    assert up1 + up2 + up3 == pytest.approx(total_up)
    assert down1 + down2 + down3 == pytest.approx(total_down)
    # Start and finish at 100 m: up and down balance (to the smoothing at the ends).
    assert total_up - total_down == pytest.approx(0.0, abs=5)
    assert 320 < total_up <= 340  # 160 + 170 + 10, less a little rounding of the peaks
    with pytest.raises(ValueError):
        c.climb_between(b, a)


def test_elevation_jitter_does_not_inflate_climb() -> None:
    rng = np.random.default_rng(1)
    n = 1001  # 10 km at 10 m spacing, flat but with +-2 m of barometric noise
    ele = 500 + rng.normal(0, 2.0, n)
    c = north_line(n, step_deg=0.00009, ele=list(ele))
    raw_up = float(np.maximum(np.diff(ele), 0).sum())
    up, _ = c.total_climb()
    assert raw_up > 1000
    assert up < 40


def test_profile_resamples_to_the_finish() -> None:
    c = north_line(3, ele=[100.0, 200.0, 100.0])
    d, e = c.profile(100.0)
    assert d[0] == 0 and d[-1] == pytest.approx(c.length_m)
    assert np.all(np.diff(d) <= 100.0 + 1e-9)
    assert e[0] == pytest.approx(100.0) and e.max() <= 200.0
    with pytest.raises(ValueError):
        c.profile(0)


def test_gpx_route_without_elevation_loads() -> None:
    c = load_course(DATA / "gpx" / "route-gpx10-no-elevation.gpx")
    assert not c.has_elevation
    assert len(c) == 8  # 9 route points, one repeated
    assert c.lat[0] == c.lat[-1]  # a loop: finish at the start


def test_gpx_segments_and_tracks_are_concatenated() -> None:
    text = (DATA / "gpx" / "garmin-segments.gpx").read_text(encoding="utf-8")
    c = course_from_gpx(text)
    assert len(c) == 5  # 6 points over 2 tracks and 3 segments; the pause repeats one
    assert list(c.ele) == pytest.approx([100.0, 110.0, 125.0, 140.0, 150.0])
    assert c.lon[-1] == pytest.approx(-1.999)


@pytest.mark.parametrize(
    ("name", "where"),
    [("malformed.gpx", "line 6"), ("waypoints-only.gpx", "<trk>/<rte>")],
)
def test_unusable_gpx_names_file_and_place(name: str, where: str) -> None:
    with pytest.raises(RaceFolderError) as info:
        load_course(DATA / "gpx" / name)
    assert info.value.file.endswith(name)
    assert where in info.value.where
    assert "Fix:" in str(info.value)


def test_gpx_with_bad_coordinate_is_reported() -> None:
    text = ('<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
            '<trkpt lat="43" lon="-2"/><trkpt lat="-2" lon="243"/></trkseg></trk></gpx>')
    with pytest.raises(RaceFolderError) as info:
        course_from_gpx(text, source="x.gpx")
    assert info.value.where == "track point 2"


def test_not_gpx_at_all_is_reported() -> None:
    with pytest.raises(RaceFolderError) as info:
        course_from_gpx("lat,lon\n43,-2\n", source="course.gpx")
    assert info.value.file == "course.gpx"
    assert "XML" in info.value.problem


@settings(max_examples=60, deadline=None)
@given(
    start=st.tuples(st.floats(-60, 60), st.floats(-179, 179)),
    steps=st.lists(st.tuples(st.floats(1.0, 500.0), st.floats(0, 2 * np.pi)),
                   min_size=1, max_size=60),
    with_ele=st.booleans(),
    ele0=st.floats(-400, 8000),
)
def test_gpx_round_trip(start: tuple[float, float], steps: list[tuple[float, float]],
                        with_ele: bool, ele0: float) -> None:
    lat, lon = [start[0]], [start[1]]
    for d, bearing in steps:  # a random walk with 1-500 m steps
        lat.append(lat[-1] + d * np.cos(bearing) / 111_195)
        lon.append(lon[-1] + d * np.sin(bearing) / (111_195 * np.cos(np.radians(lat[-2]))))
    ele = list(ele0 + np.cumsum(np.r_[0, [d / 10 for d, _ in steps]])) if with_ele else None
    c = Course.from_points(lat, lon, ele)
    back = course_from_gpx(course_to_gpx(c, "A <round> & trip"))
    assert len(back) == len(c)
    assert back.has_elevation == c.has_elevation
    assert np.abs(back.lat - c.lat).max() <= 1e-6
    assert np.abs(back.lon - c.lon).max() <= 1e-6
    assert np.abs(back.ele - c.ele).max() <= 0.1
    assert np.abs(back.dist - c.dist).max() <= 0.1


def test_haversine_known_distance() -> None:
    # One degree of latitude on the mean-radius sphere.
    d = haversine_m(np.array([0.0]), np.array([0.0]), np.array([1.0]), np.array([0.0]))
    assert d[0] == pytest.approx(111_195.0, abs=1.0)


# ------------------------------------------------------------- the demo course's facts

@pytest.fixture(scope="module")
def zegama() -> Course:
    return load_course(ROOT / "races" / "zegama-2026" / "course.gpx")


def test_demo_course_length(zegama: Course) -> None:
    assert zegama.length_m == pytest.approx(42_195, abs=50)
    assert 3000 <= len(zegama) <= 5000
    spacing = np.diff(zegama.dist)
    assert spacing.min() >= 5 and spacing.max() <= 25


@pytest.mark.parametrize(("km", "alt"), sorted(ZEGAMA_ALTITUDES.items()))
def test_demo_course_altitudes(zegama: Course, km: float, alt: float) -> None:
    at = min(km * 1000, zegama.length_m)
    assert zegama.elevation_at(at) == pytest.approx(alt, abs=30)


def test_demo_course_climb_and_high_point(zegama: Course) -> None:
    up, down = zegama.total_climb()
    assert 2500 <= up <= 2900
    assert up - down == pytest.approx(0, abs=30)
    high = float(zegama.dist[np.argmax(zegama.ele)])
    assert 22_000 <= high <= 24_000  # the Aizkorri ridge


def test_demo_course_starts_and_finishes_in_the_same_street(zegama: Course) -> None:
    gap = haversine_m(zegama.lat[:1], zegama.lon[:1], zegama.lat[-1:], zegama.lon[-1:])
    assert gap[0] <= 30
    for d in (100.0, 250.0, 400.0):  # out and back on the same path
        a = np.array(zegama.position_at(d))
        b = np.array(zegama.position_at(zegama.length_m - d))
        assert haversine_m(a[:1], a[1:], b[:1], b[1:])[0] < 5
