"""Race board: ranks, time gaps (not distances), ranked checkpoint splits, finishers."""

from __future__ import annotations

import pytest

from race_engine.board import build_board, gap_s, rank_key, ranked
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
    # b is at 3000 m at 900 s; a passed 3000 m at 750 s.
    assert rows["2"]["gap_leader_s"] == pytest.approx(150.0)
    assert rows["2"]["gap_ahead_s"] == pytest.approx(150.0)
    assert rows["2"]["rank"] == 2 and rows["3"]["rank"] is None
    # The reference is at 3000 m at 600 s; b is there at 900 s.
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
