"""Race board: ranks, time gaps (not distances), ranked checkpoint splits, finishers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from race_engine.board import build_board, gap_s, rank_key, ranked, row_moved
from race_engine.model import Entrant, Status
from race_engine.record import RecordCurve
from race_engine.runner import CHIP, Layout, RunnerState

START = 1_800_000_000_000
LAYOUT = Layout(START, ("start", "a", "finish"), (0.0, 2000.0, 4000.0),
                {"start": 0, "a": 1, "finish": 2})


def at(s: float) -> int:
    return START + round(s * 1000)


def runner(bib: str, *obs: tuple[float, float]) -> RunnerState:
    r = RunnerState(bib, LAYOUT)
    for s, p in obs:
        r.add_fix(at(s), p, 5.0, 43.0, -2.0)
    r.refresh_status()
    return r


def test_gap_is_the_difference_of_passing_times_at_the_same_point() -> None:
    # The leader runs 4 m/s then slows to 2 m/s; the chaser runs 3 m/s throughout.
    leader = runner("1", (250, 1000.0), (500, 2000.0), (1000, 3000.0))
    chaser = runner("2", (400, 1200.0))
    # The leader passed 1200 m at 300 s; the chaser is there at 400 s: 100 s behind,
    # although the leader is 1800 m ahead (which would be 600 s at the chaser's speed).
    assert gap_s(chaser, leader) == pytest.approx(100.0)
    assert gap_s(leader, chaser) is None  # the chaser has not been where the leader is


def test_rank_finished_then_furthest_checkpoint_then_progress_then_dnf() -> None:
    fin_slow = runner("1", (1000, 2000.0), (2000, 4000.0))
    fin_fast = runner("2", (900, 2000.0), (1800, 4000.0))
    far = runner("3", (900, 2100.0), (1300, 3500.0))
    near = runner("4", (1300, 3000.0))
    dnf = runner("5", (1000, 3900.0))
    dnf.set_status(Status.DNF, "injury", at(1000))
    nothing = runner("6")
    order = [r.bib for r in ranked({r.bib: r for r in (fin_slow, fin_fast, far, near, dnf,
                                                        nothing)})]
    assert order == ["2", "1", "3", "4", "6", "5"]
    assert rank_key(fin_fast) < rank_key(far)


def test_board_rows_gaps_record_pace_and_unranked_runners() -> None:
    a = runner("1", (500, 2000.0), (1000, 4000.0))
    b = runner("2", (600, 2000.0), (900, 3000.0))
    c = runner("3", (700, 2000.0))
    c.set_status(Status.DNF, "cold", at(800))
    runners = {r.bib: r for r in (a, b, c)}
    entrants = {"1": Entrant("1", "Ane", "F", "SEN", "ES", "d1")}
    curve = RecordCurve([0.0, 4000.0], [0.0, 800.0], "record")
    board = build_board("race", runners, entrants, curve, at(1000))
    rows = {row["bib"]: row for row in board["runners"]}
    assert board["leader"] == "1"
    assert [row["bib"] for row in board["runners"]] == ["1", "2", "3"]
    assert rows["1"]["name"] == "Ane" and rows["1"]["status"] == "finished"
    # The board is ranked at 1000 s. b was at 3000 m at 900 s, 1.5 times the reference's
    # time there: 100 s later it is 100 / 1.5 reference seconds on, at 3333 m; a passed
    # 3333 m at 833 s.
    assert rows["2"]["est_m"] == 3330.0 and rows["2"]["estimated"] is True  # 100 s silent
    assert rows["2"]["gap_leader_s"] == 167.0
    assert rows["2"]["gap_ahead_s"] == 167.0
    assert rows["1"]["gap_leader_s"] == 0.0 and rows["1"]["est_m"] == 4000.0
    assert rows["2"]["rank"] == 2 and rows["3"]["rank"] is None
    assert rows["3"]["est_m"] is None and rows["3"]["gap_leader_s"] is None
    # Record pace is at the latest fix: the reference is at 3000 m at 600 s; b was there
    # at 900 s.
    assert rows["2"]["record_delta_s"] == pytest.approx(300.0)
    assert rows["2"]["record_delta"] == "+5:00"
    assert rows["3"]["last_seen_s"] == pytest.approx(300.0)


def test_checkpoint_splits_ranked_with_gaps_and_sources() -> None:
    a = runner("1", (500, 2000.0))
    b = runner("2", (450, 1900.0))
    b.set_split("a", at(480), CHIP)
    board = build_board("race", {"1": a, "2": b}, {}, None, at(600))
    cp_a = next(cp for cp in board["checkpoints"] if cp["id"] == "a")
    assert [(s["bib"], s["gap_s"], s["source"]) for s in cp_a["splits"]] == [
        ("2", 0.0, "chip"), ("1", 20.0, "gps")]
    assert cp_a["km"] == 2.0


def test_finishers_in_finish_order_with_gaps() -> None:
    a = runner("1", (1000, 2000.0), (2000, 4000.0))
    b = runner("2", (900, 2000.0), (1900, 4000.0))
    c = runner("3", (900, 2000.0))
    board = build_board("race", {"1": a, "2": b, "3": c}, {}, None, at(2100))
    assert [(f["bib"], f["time_s"], f["gap_s"]) for f in board["finishers"]] == [
        ("2", 1900.0, 0.0), ("1", 2000.0, 100.0)]


def test_empty_race_board() -> None:
    board = build_board("race", {}, {}, None, at(0))
    assert board["runners"] == [] and board["leader"] is None and board["checkpoints"] == []


CURVE = RecordCurve([0.0, 4000.0], [0.0, 800.0], "record")


def test_a_silent_runner_is_ranked_where_its_pace_puts_it_now() -> None:
    # The user's case: ranked by latest progress, a runner whose tracker went quiet
    # falls behind one with a fresh fix, whose gap to it is then negative.
    quiet = runner("1", (300, 1500.0), (400, 2000.0))  # 5 m/s, silent since 400 s
    fresh = runner("2", (400, 1600.0), (520, 2100.0))  # 4.2 m/s, seen at 520 s
    assert gap_s(quiet, fresh) is not None and gap_s(quiet, fresh) < 0  # the old rule
    board = build_board("race", {"1": quiet, "2": fresh}, {}, CURVE, at(520))
    rows = {row["bib"]: row for row in board["runners"]}
    assert [row["bib"] for row in board["runners"]] == ["1", "2"]
    assert rows["1"]["est_m"] > rows["2"]["est_m"]
    assert rows["1"]["gap_leader_s"] == 0.0
    assert rows["2"]["gap_ahead_s"] > 0.0 and rows["2"]["tied"] is False


def test_an_estimate_is_marked_after_a_minute_and_stops_at_the_next_checkpoint() -> None:
    r = runner("1", (300, 1500.0))
    board = build_board("race", {"1": r}, {}, CURVE, at(330))
    assert board["runners"][0]["estimated"] is False
    late = build_board("race", {"1": r}, {}, CURVE, at(3000))["runners"][0]
    assert late["estimated"] is True
    assert late["est_m"] == 2000.0  # checkpoint "a": no split there yet
    assert late["progress_m"] == 1500.0  # what was seen stays as it was


def test_runners_at_the_same_point_are_tied_with_a_gap_of_zero() -> None:
    a = runner("1", (300, 1500.0), (400, 1900.0))
    b = runner("2", (300, 1500.0), (400, 1900.0))
    rows = build_board("race", {"1": a, "2": b}, {}, CURVE, at(400))["runners"]
    assert [(row["bib"], row["rank"], row["gap_ahead_s"], row["tied"]) for row in rows] == [
        ("1", 1, None, False), ("2", 2, 0.0, True)]


def test_a_finisher_with_no_fix_past_the_line_gives_gaps_behind_it() -> None:
    # The finisher's last fix was 40 m short of the line; the chaser is 20 m short.
    fin = runner("1", (700, 3000.0), (940, 3960.0))
    fin.set_split("finish", at(950), CHIP)
    fin.refresh_status()
    assert fin.status is Status.FINISHED
    chaser = runner("2", (800, 3000.0), (1040, 3980.0))
    board = build_board("race", {"1": fin, "2": chaser}, {}, CURVE, at(1040))
    rows = {row["bib"]: row for row in board["runners"]}
    assert rows["2"]["gap_leader_s"] is not None and rows["2"]["gap_leader_s"] >= 0.0


track = st.lists(st.tuples(st.floats(60.0, 600.0), st.floats(0.0, 900.0)),
                 min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(track, min_size=1, max_size=6), st.floats(0.0, 4000.0), st.booleans())
def test_no_gap_is_ever_negative_and_the_leader_s_is_zero(
        tracks: list[list[tuple[float, float]]], later_s: float, chip: bool) -> None:
    runners = {}
    for n, steps in enumerate(tracks):
        t, p, obs = 0.0, 0.0, []
        for dt, dp in steps:  # noisy tracks: progress may step back
            t, p = t + dt, min(max(p + dp - 150.0, 0.0), 4000.0)
            obs.append((t, p))
        r = runner(str(n), *obs)
        if chip and n == 0:
            r.set_split("a", at(obs[0][0]), CHIP)
        runners[r.bib] = r
    at_ms = at(max(r.last_t or 0 for r in runners.values()) / 1000 - START / 1000 + later_s)
    rows = [row for row in build_board("race", runners, {}, CURVE, at_ms)["runners"]
            if row["rank"] is not None]
    assert not rows or rows[0]["gap_leader_s"] == 0.0
    for row in rows:
        assert row["gap_leader_s"] >= 0.0
        assert row["gap_ahead_s"] is None or row["gap_ahead_s"] >= 0.0


def test_no_board_of_a_whole_simulated_race_has_a_negative_gap() -> None:
    import numpy as np

    from race_engine.engine import RaceEngine
    from race_engine.racefolder import load_race
    from race_engine.simulate import SimOptions, simulate

    race = load_race(Path(__file__).resolve().parents[2] / "races" / "zegama-2026")
    sim = simulate(race, np.random.default_rng(3),
                   SimOptions(runners=40, checkpoint_stop_s=(0.0, 90.0),
                              tracker_off_at_finish=True))
    engine = RaceEngine(race)
    now, next_board, boards, estimated, finished = race.start_ms, race.start_ms, 0, 0, 0
    for fix, arrival in sim.pings():
        now = max(now, arrival)
        if now >= next_board:
            rows = [r for r in engine.board(now)["runners"] if r["rank"] is not None]
            boards += 1
            if rows:
                assert rows[0]["gap_leader_s"] == 0.0
            for row in rows:
                assert row["gap_leader_s"] >= 0.0, (now, row)
                assert row["gap_ahead_s"] is None or row["gap_ahead_s"] >= 0.0, (now, row)
                estimated += row["estimated"]
                finished += row["status"] == "finished"
            next_board = now + 60_000
        engine.on_fix(None, fix, now)
    assert boards > 400 and estimated > 0 and finished > 0  # the checks met those cases


def test_a_row_is_sent_again_when_it_moved_more_than_between_fixes() -> None:
    r = runner("1", (300, 1500.0), (400, 1900.0))
    (row,) = build_board("race", {"1": r}, {}, CURVE, at(400))["runners"]
    assert row_moved(row, None)
    assert not row_moved({**row, "last_seen_s": 99.0}, row)
    assert not row_moved({**row, "est_m": row["est_m"] + 40.0, "gap_ahead_s": 1.0},
                         {**row, "gap_ahead_s": 0.0})
    assert row_moved({**row, "est_m": row["est_m"] + 50.0}, row)
    assert row_moved({**row, "gap_leader_s": 2.0}, row)
    assert row_moved({**row, "gap_ahead_s": 1.0}, {**row, "gap_ahead_s": None})
    assert row_moved({**row, "rank": 2}, row) and row_moved({**row, "tied": True}, row)
