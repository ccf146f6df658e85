"""Runner state: the time-sorted track, interpolated splits, overrides, status, snapshot."""

from __future__ import annotations

import json
import random
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from race_engine.course import Course
from race_engine.model import AlertThresholds, Checkpoint, Race, Status
from race_engine.runner import CHIP, FINISH_AREA_M, MANUAL, OFF_TRACK_M, Layout, RunnerState

START = 1_800_000_000_000
LAYOUT = Layout(START, ("start", "a", "b", "finish"), (0.0, 1000.0, 2000.0, 3000.0),
                {"start": 0, "a": 1, "b": 2, "finish": 3})


def at(s: float) -> int:
    return START + round(s * 1000)


def runner(*obs: tuple[float, float]) -> RunnerState:
    r = RunnerState("7", LAYOUT)
    for s, p in obs:
        r.add_fix(at(s), p, 5.0, 43.0, -2.0)
    return r


def split_times(r: RunnerState) -> dict[str, int]:
    return {s.checkpoint: s.t_ms for s in r.splits()}


def test_split_is_interpolated_between_the_fixes_either_side() -> None:
    r = runner((100, 400.0), (200, 1200.0))
    # 1000 m is 600/800 of the way from 400 m to 1200 m: 75 s after the first fix.
    assert split_times(r) == {"start": START, "a": at(175)}
    assert r.split("a") is not None and r.split("a").source == "gps"  # type: ignore[union-attr]


def test_a_late_fix_inside_the_interval_refines_the_split() -> None:
    r = runner((100, 400.0), (200, 1200.0))
    changed = r.add_fix(at(150), 900.0, 3.0, 43.0, -2.0)
    assert changed == ["a"]
    # Now between (150 s, 900 m) and (200 s, 1200 m): 100/300 of 50 s.
    assert r.split("a").t_ms == round(at(150) + 50_000 / 3)  # type: ignore[union-attr]


def test_a_late_fix_outside_any_checkpoint_interval_changes_no_split() -> None:
    r = runner((100, 400.0), (200, 1200.0), (300, 1500.0))
    before = split_times(r)
    assert r.add_fix(at(250), 1350.0, 3.0, 43.0, -2.0) == []
    assert split_times(r) == before


def test_duplicate_fix_is_ignored() -> None:
    r = runner((100, 400.0), (200, 1200.0))
    snap = r.to_dict()
    assert r.add_fix(at(200), 1500.0, 3.0, 43.0, -2.0) is None
    assert r.to_dict() == snap


def test_first_fix_past_a_checkpoint_interpolates_from_the_start() -> None:
    r = runner((400, 2000.0))
    # From (start, 0 m) to (400 s, 2000 m): 1000 m at 200 s.
    assert split_times(r)["a"] == at(200)


def test_stepping_back_never_moves_a_split_or_progress_back() -> None:
    r = runner((100, 900.0), (200, 1100.0), (300, 1050.0), (400, 1400.0))
    assert r.progress_at(at(300)) == 1100.0
    assert split_times(r)["a"] == at(150)
    assert r.progress_m == 1400.0


def test_off_course_fix_is_kept_for_alerts_but_not_for_progress() -> None:
    r = runner((100, 500.0))
    r.add_fix(at(200), 2500.0, OFF_TRACK_M + 50, 43.1, -2.1)
    assert r.progress_m == 500.0
    assert r.last_t == at(200) and r.last_off == OFF_TRACK_M + 50
    assert r.off_streak_ms(150.0) == at(200)


def test_implausibly_fast_progress_is_rejected() -> None:
    r = runner((100, 500.0))
    r.add_fix(at(110), 2900.0, 5.0, 43.0, -2.0)  # 2.4 km in 10 s: matched elsewhere
    assert r.progress_m == 500.0 and "b" not in split_times(r)


def test_gps_finish_near_the_end_of_the_course_is_timed_at_the_end() -> None:
    layout = Layout(START, LAYOUT.ids, LAYOUT.m, LAYOUT.index, (0.0, 1000.0, 2000.0, 2975.0))
    r = RunnerState("7", layout)
    r.add_fix(at(1000), 2800.0, 3.0, 43.0, -2.0)
    assert r.add_fix(at(1100), 2980.0, 3.0, 43.0, -2.0) == ["finish"]
    # 2975 m at 1000 + 175/180 * 100 s, then 25 m more at 1.8 m/s.
    expected = 1000 + 175 / 180 * 100 + 25 / 1.8
    assert r.split("finish").t_ms == pytest.approx(at(expected), abs=1)  # type: ignore[union-attr]


def test_split_at_an_aid_station_is_the_arrival_not_the_departure() -> None:
    layout = Layout(START, LAYOUT.ids, LAYOUT.m, LAYOUT.index, (0.0, 985.0, 1985.0, 2975.0))
    r = RunnerState("7", layout)
    r.add_fix(at(300), 900.0, 3.0, 43.0, -2.0)
    # Arrives at 1000 m at 330 s, stays 3 minutes with fixes a few metres short of it.
    for s, p in ((330, 996.0), (390, 994.0), (450, 997.0), (510, 995.0), (540, 1080.0)):
        r.add_fix(at(s), p, 3.0, 43.0, -2.0)
    # 985 m at 300 + 85/96 * 30 s, then 15 m at 3.2 m/s: 331.3 s, not ~525 s.
    assert r.split("a").t_ms == pytest.approx(at(300 + 85 / 96 * 30 + 15 / 3.2), abs=1)  # type: ignore[union-attr]


def test_chip_read_overrides_gps_and_manual_overrides_chip() -> None:
    r = runner((100, 400.0), (200, 1200.0))
    assert r.set_split("a", at(180), CHIP) == ["a"]
    assert r.split("a") is not None and r.split("a").t_ms == at(180)  # type: ignore[union-attr]
    assert r.set_split("a", at(170), MANUAL) == ["a"]
    s = r.split("a")
    assert s is not None and (s.t_ms, s.source) == (at(170), "manual")


def test_earlier_chip_read_of_a_checkpoint_wins() -> None:
    r = runner((100, 400.0))
    r.set_split("a", at(180), CHIP)
    assert r.set_split("a", at(185), CHIP) == []
    r.set_split("a", at(178), CHIP)
    assert split_times(r)["a"] == at(178)


def test_chip_read_fills_the_splits_between_gps_and_the_mat() -> None:
    r = runner((100, 500.0))
    r.set_split("finish", at(700), CHIP)
    times = split_times(r)
    # GPS stops at 500 m; the finish mat is at 3000 m: a and b are interpolated.
    assert times["a"] == at(100 + 600 * 500 / 2500)
    assert times["b"] == at(100 + 600 * 1500 / 2500)
    assert r.refresh_status() is True
    assert r.status is Status.FINISHED and r.status_ms == at(700)


def test_gps_split_is_clamped_to_stay_before_a_later_chip_read() -> None:
    r = runner((100, 400.0), (300, 1100.0))
    r.set_split("b", at(200), CHIP)  # a mat read contradicting the GPS
    times = [s.t_ms for s in r.splits()]
    assert times == sorted(times)


def test_a_chip_read_at_12_m_s_from_the_previous_split_is_held() -> None:
    r = runner((100, 400.0), (200, 1200.0))  # GPS split at a: 175 s
    assert r.chip_read("b", at(175 + 1000 / 12)) == []
    assert "b" not in r.chip and r.split("b") is None
    h = r.held["b"]
    assert (h.against, h.after, h.max_mps) == ("a", False, 7.0)
    assert h.speed_mps == pytest.approx(12.0, rel=1e-3)
    # a retry of the same read, or a later implausible one, changes nothing
    assert r.chip_read("b", h.t_ms) == [] and r.chip_read("b", h.t_ms + 1_000) == []
    assert r.held["b"] is h
    assert r.chip_read("b", at(175 + 1000 / 4)) == ["b"]  # a plausible read is applied
    assert r.split("b").source == "chip"  # type: ignore[union-attr]


def test_a_gps_split_is_allowed_its_error_an_exact_split_is_not() -> None:
    t = at(175 + 1000 / 7.5)  # 7.5 m/s from a at 175 s: within 15 s of a GPS split's error
    gps = runner((100, 400.0), (200, 1200.0))
    assert gps.judge_chip("b", t) is None
    manual = runner((100, 400.0), (200, 1200.0))
    manual.set_split("a", at(175), MANUAL)
    verdict = manual.judge_chip("b", t)
    assert verdict is not None and verdict.speed_mps == pytest.approx(7.5, rel=1e-3)


def test_a_chip_read_too_early_for_the_next_split_is_held() -> None:
    r = runner((100, 400.0), (200, 1200.0), (300, 1500.0), (400, 2100.0))  # b: GPS ~383 s
    h = r.judge_chip("a", at(60))  # 16.7 m/s from the gun
    assert h is not None and (h.against, h.after) == ("start", False)
    h = r.judge_chip("a", at(375))  # 1000 m in 8 s to b's split
    assert h is not None and (h.against, h.after) == ("b", True)
    assert r.judge_chip("a", at(175)) is None


def test_held_reads_are_in_the_snapshot() -> None:
    r = runner((100, 400.0), (200, 1200.0))
    r.chip_read("b", at(250))
    assert "b" in r.held
    back = RunnerState.from_dict(json.loads(json.dumps(r.to_dict())), LAYOUT)
    assert back.held == r.held and back.to_dict() == r.to_dict()
    old = r.to_dict()
    del old["held"]  # a snapshot from before held reads existed
    assert RunnerState.from_dict(old, LAYOUT).held == {}


def test_status_finished_with_finish_split_and_race_control_wins() -> None:
    r = runner((100, 1500.0))
    assert r.set_status(Status.DNF, "hypothermia", at(120))
    r.add_fix(at(600), 3000.0, 2.0, 43.0, -2.0)
    assert r.refresh_status() is False and r.status is Status.DNF and r.reason == "hypothermia"
    assert r.set_status(Status.RUNNING, "", at(700))
    assert r.status is Status.FINISHED and r.reason == ""


def span(window: tuple[float, float, float]) -> tuple[float, float, float]:
    near, behind, ahead = window
    return near - behind, near, near + ahead


def test_window_grows_with_time_since_the_previous_fix() -> None:
    r = runner((200, 1000.0))
    # Soon after a fix the runner is expected where it was...
    assert span(r.window(at(210))) == (700.0, 1000.0, 1500.0)
    # ...long after, moved on at its average pace so far (5 m/s).
    assert span(r.window(at(1200))) == (700.0, 6000.0, 8000.0)
    r.add_fix(at(1200), 2000.0, 1.0, 43.0, -2.0)
    # Between two known fixes the runner is expected half-way.
    assert span(r.window(at(700))) == (700.0, 1500.0, 4500.0)


def test_window_before_any_progress_expects_the_prior_pace() -> None:
    near, behind, ahead = RunnerState("1", LAYOUT).window(at(400))
    assert (near, near - behind, near + ahead) == (1000.0, -300.0, 2800.0)


def test_snapshot_round_trips_through_json() -> None:
    r = runner((100, 400.0), (200, 1200.0), (50, 100.0))
    r.add_fix(at(250), 1300.0, 300.0, 43.2, -2.1, bat=0.4, sos=True)
    r.set_split("b", at(400), CHIP)
    r.set_status(Status.DSQ, "cut the course", at(500))
    back = RunnerState.from_dict(json.loads(json.dumps(r.to_dict())), LAYOUT)
    assert back.to_dict() == r.to_dict()
    assert back.splits() == r.splits() and back.a_m == r.a_m
    assert back.sos_ms == at(250) and back.last_bat == 0.4


def test_from_dict_rejects_garbage() -> None:
    for bad in ({}, {"v": 2}, {"v": 1, "bib": "1"}):
        try:
            RunnerState.from_dict(bad, LAYOUT)
        except ValueError as e:
            assert "snapshot" in str(e)
        else:
            raise AssertionError(f"{bad} was accepted")


# ------------------------------------------------------------------ properties

observations = st.lists(
    st.tuples(st.integers(1, 20_000), st.floats(0.0, 3500.0)), min_size=1, max_size=40,
    unique_by=lambda o: o[0],
)


def _clean(obs: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Progress that a runner can produce: non-decreasing-ish, at most 4 m/s."""
    obs = sorted(obs)
    out, p = [], 0.0
    for s, raw in obs:
        p = min(max(raw, p - 40.0), p + 4.0 * (s - (out[-1][0] if out else 0)))
        out.append((s, p))
    return out


@settings(max_examples=200, deadline=None)
@given(observations, st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_splits(obs: list[tuple[int, float]],
                                                 rnd: random.Random) -> None:
    obs = _clean(obs)
    shuffled = list(obs)
    rnd.shuffle(shuffled)
    assert runner(*obs).splits() == runner(*shuffled).splits()


@settings(max_examples=200, deadline=None)
@given(observations, st.randoms(use_true_random=False))
def test_duplicates_change_nothing(obs: list[tuple[int, float]], rnd: random.Random) -> None:
    obs = _clean(obs)
    twice = obs + [rnd.choice(obs) for _ in range(len(obs))]
    assert runner(*twice).to_dict() == runner(*obs).to_dict()


@settings(max_examples=200, deadline=None)
@given(observations, st.lists(st.tuples(st.sampled_from(LAYOUT.ids), st.integers(1, 20_000),
                                        st.sampled_from((CHIP, MANUAL))), max_size=4))
def test_splits_are_ordered_in_time(obs: list[tuple[int, float]],
                                    overrides: list[tuple[str, int, int]]) -> None:
    r = runner(*obs)  # raw, noisy, unordered progress
    for cid, s, src in overrides:
        if cid != "start":
            r.set_split(cid, at(s), src)
    splits = r.splits()
    times = [s.t_ms for s in splits]
    authoritative = [s.t_ms for s in splits if s.source != "gps"]
    if authoritative == sorted(authoritative):
        assert times == sorted(times)
    for n, s in enumerate(splits):  # a GPS estimate never comes before an earlier split
        if s.source == "gps":
            assert all(times[k] <= s.t_ms for k in range(n))


# ------------------------------------------------------------ accuracy v2: the approach

def race_on_a_line(length_m: float, checkpoint_m: float | None = None) -> Race:
    """A flat straight course due north (so the effort curve is a constant pace)."""
    y = np.linspace(0.0, length_m, 61)
    course = Course.from_points(43.0 + y / 111_195.0, np.full(y.size, -2.3),
                                np.full(y.size, 300.0))
    mid = () if checkpoint_m is None else (Checkpoint("mid", "Aid", checkpoint_m / 1000),)
    return Race("line", "Line", START, "UTC", 4 * 3600.0, course,
                (Checkpoint("start", "Start", 0.0), *mid,
                 Checkpoint("finish", "Finish", course.length_m / 1000)),
                (), (), AlertThresholds(), ())


def test_paced_progress_is_linear_in_time_for_a_runner_at_a_steady_share_of_the_reference(
        ) -> None:
    # The reference curve: 3 m/s to 1000 m, then a climb at 1 m/s to 1300 m, then 3 m/s.
    xs = (0.0, 1000.0, 1300.0, 3000.0)
    ts = (0.0, 1000 / 3, 1000 / 3 + 300.0, 1000 / 3 + 300.0 + 1700 / 3)
    layout = Layout(START, ("start", "top", "finish"), (0.0, 1300.0, 3000.0),
                    {"start": 0, "top": 1, "finish": 2}, pace_d=xs, pace_t=ts)
    paced = layout.paced(1)
    assert paced(1300.0) == pytest.approx(1300.0)
    # A runner at 80% of the reference's speed everywhere: paced progress grows at a
    # steady rate (0.8 of the reference's 1 m/s on the climb to the checkpoint) across
    # the change of gradient at 1000 m.
    times = [t / 0.8 for t in (200.0, 300.0, 1000 / 3 + 50.0, 1000 / 3 + 250.0)]
    ps = [600.0, 900.0, 1050.0, 1250.0]
    rates = [(paced(b) - paced(a)) / (tb - ta)
             for (ta, a), (tb, b) in pairwise(zip(times, ps, strict=True))]
    assert rates == pytest.approx([0.8, 0.8, 0.8])


def test_a_layout_without_a_curve_fits_raw_metres() -> None:
    assert LAYOUT.paced(1)(950.0) == 950.0


def test_a_split_through_a_change_of_pace_is_the_crossing_not_a_straight_line_s() -> None:
    # On a climb to the checkpoint at 1300 m the runner slows from 3 to 1 m/s at 1000 m,
    # as the reference does. A line through raw metres over the last 90 s would put the
    # crossing seconds off; through paced progress it is exact (no GPS noise here).
    xs = (0.0, 1000.0, 1300.0, 3000.0)
    ts = (0.0, 1000 / 3, 1000 / 3 + 300.0, 1000 / 3 + 300.0 + 1700 / 3)
    layout = Layout(START, ("start", "top", "finish"), (0.0, 1300.0, 3000.0),
                    {"start": 0, "top": 1, "finish": 2}, trig=(0.0, 1285.0, 2940.0),
                    pace_d=xs, pace_t=ts)
    r = RunnerState("7", layout)
    t = 0.0
    while t <= 700.0:  # the runner runs exactly the reference
        p = 3.0 * t if t <= 1000 / 3 else min(1000.0 + (t - 1000 / 3), 1300.0) \
            if t <= 1000 / 3 + 300 else 1300.0 + 3.0 * (t - 1000 / 3 - 300)
        r.add_fix(at(t), p, 3.0, 43.0, -2.0)
        t += 10.0
    assert r.split("top").t_ms == pytest.approx(at(1000 / 3 + 300), abs=500)  # type: ignore[union-attr]


def test_a_finish_with_no_fix_past_the_line_is_recognised_in_the_finish_area() -> None:
    # The tracker is switched off on the line: the last fix is 30 m short of it.
    layout = Layout.from_race(race_on_a_line(3000.0))
    assert layout.trig[-1] == pytest.approx(layout.m[-1] - FINISH_AREA_M)
    r = RunnerState("7", layout)
    for s in range(0, 991, 10):
        r.add_fix(at(s), 3.0 * s, 3.0, 43.0, -2.0)  # 2970 m at 990 s, then nothing
    finish = r.split("finish")
    assert finish is not None and finish.t_ms == pytest.approx(at(1000), abs=1500)
    assert r.refresh_status() and r.status is Status.FINISHED  # as the engine does


def test_a_runner_short_of_the_finish_area_has_not_finished() -> None:
    r = RunnerState("7", Layout.from_race(race_on_a_line(3000.0)))
    for s in range(0, 971, 10):
        r.add_fix(at(s), 3.0 * s, 3.0, 43.0, -2.0)  # 2910 m: 90 m to go
    assert r.split("finish") is None
    assert not r.refresh_status() and r.status is Status.RUNNING


def test_a_noisy_stop_at_a_checkpoint_is_split_at_the_arrival() -> None:
    # 3 m/s to the checkpoint at 1500 m (500 s), 90 s standing there with fixes scattered
    # +-8 m around it, then on at 3 m/s: the split is the arrival, not the middle of the
    # stop nor the departure.
    layout = Layout.from_race(race_on_a_line(3000.0, checkpoint_m=1500.0))
    r = RunnerState("7", layout)
    rnd = random.Random(3)
    for s in range(0, 801, 10):
        p = 3.0 * s if s <= 500 else 1500.0 if s <= 590 else 1500.0 + 3.0 * (s - 590)
        r.add_fix(at(s), p + rnd.uniform(-8.0, 8.0), 3.0, 43.0, -2.0)
    assert r.split("mid").t_ms == pytest.approx(at(500), abs=3000)  # type: ignore[union-attr]


def test_a_gps_split_says_how_sure_it_is_and_a_chip_read_does_not_need_to() -> None:
    layout = Layout.from_race(race_on_a_line(3000.0, checkpoint_m=1500.0))
    r = RunnerState("7", layout)
    rnd = random.Random(5)
    for s in range(0, 991, 10):
        r.add_fix(at(s), 3.0 * s + rnd.uniform(-10.0, 10.0), 3.0, 43.0, -2.0)
    mid, finish, start = r.split("mid"), r.split("finish"), r.split("start")
    assert mid is not None and finish is not None and start is not None
    assert mid.err_s is not None and 2.0 < mid.err_s < 15.0
    assert abs(mid.t_ms - at(500)) <= mid.err_s * 1000
    # The finish is extrapolated past the last fix (30 m short of the line): less sure.
    assert finish.err_s is not None and finish.err_s > mid.err_s
    assert start.err_s == 0.0  # the gun
    assert [s.err_s for s in r.splits()] == [start.err_s, mid.err_s, finish.err_s]
    r.set_split("mid", at(501), CHIP)
    assert r.split("mid").err_s is None  # type: ignore[union-attr]


def test_a_split_from_the_envelope_alone_is_as_sure_as_the_fixes_either_side() -> None:
    layout = Layout.from_race(race_on_a_line(3000.0, checkpoint_m=1500.0))
    r = RunnerState("7", layout)
    for s in (400, 460, 580, 640):  # two fixes each side, a minute apart: no line
        r.add_fix(at(s), 3.0 * s, 3.0, 43.0, -2.0)
    mid = r.split("mid")
    assert mid is not None and mid.err_s == 120.0
