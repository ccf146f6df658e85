"""The engine facade over a synthetic out-and-back course whose start and finish share
a street: fixes in order, in late bursts, shuffled; chip reads, control, views, snapshot."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from race_engine.course import Course
from race_engine.engine import EngineInputError, RaceEngine
from race_engine.model import (
    AlertThresholds,
    Checkpoint,
    ChipRead,
    DangerZone,
    Entrant,
    Fix,
    Race,
    RecordSplit,
)

START = 1_800_000_000_000
M_PER_DEG = 111_195.0
COS = math.cos(math.radians(43.0))


def _course() -> Course:
    """2 km north up a street, a 4 km square loop, and back down the same street."""
    xy = [(0, 0), (0, 2000), (1000, 2000), (1000, 3000), (0, 3000), (0, 2000), (0, 0)]
    pts: list[tuple[float, float]] = []
    for (x0, y0), (x1, y1) in itertools.pairwise(xy):
        for f in np.linspace(0, 1, 41)[:-1]:
            pts.append((x0 + f * (x1 - x0), y0 + f * (y1 - y0)))
    pts.append(xy[-1])
    x, y = np.array(pts).T
    ele = 300 + 0.2 * np.minimum(np.arange(x.size), x.size - np.arange(x.size))
    return Course.from_points(43.0 + y / M_PER_DEG, -2.3 + x / (M_PER_DEG * COS), ele)


COURSE = _course()
L = COURSE.length_m
RACE = Race(
    "loop", "Loop", START, "UTC", 4 * 3600.0, COURSE,
    (Checkpoint("start", "Start", 0.0), Checkpoint("b1", "Street top", 2.0),
     Checkpoint("corner", "Far corner", 4.0), Checkpoint("b2", "Street top again", 6.0),
     Checkpoint("finish", "Finish", L / 1000, cutoff_s=3 * 3600.0)),
    (RecordSplit("b2", 1800.0), RecordSplit("finish", 2400.0)),
    (DangerZone("loop", "The loop", 3.0, 5.0),), AlertThresholds(),
    tuple(Entrant(str(b), f"Runner {b}", "F", "SEN", "ES", f"dev{b}") for b in (1, 2, 3)),
)


def fixes(device: str, speed: float, every_s: int = 20, seed: int = 0) -> list[Fix]:
    """A runner at constant ``speed`` m/s with ~4 m of GPS noise, until the finish."""
    rnd = random.Random(seed)
    out = []
    for k in range(1, int(L / speed / every_s) + 2):
        lat, lon = COURSE.position_at(speed * k * every_s)
        out.append(Fix(device, START + k * every_s * 1000, lat + rnd.gauss(0, 3e-5),
                       lon + rnd.gauss(0, 4e-5), bat=0.8))
    return out


def feed(engine: RaceEngine, fs: list[Fix]) -> None:
    for f in fs:
        engine.on_fix(None, f, f.t)


def splits(engine: RaceEngine, bib: str) -> list[tuple[str, int, str]]:
    return [(s.checkpoint, s.t_ms, s.source) for s in engine.runner(bib).splits()]


def test_splits_on_a_shared_street_follow_the_runner_not_the_nearest_point() -> None:
    e = RaceEngine(RACE)
    feed(e, fixes("dev1", 2.5))
    got = {cid: (t - START) / 1000 for cid, t, _ in splits(e, "1")}
    for cid, km in (("b1", 2.0), ("corner", 4.0), ("b2", 6.0)):
        assert got[cid] == pytest.approx(km * 1000 / 2.5, abs=8.0)
    assert got["finish"] == pytest.approx(L / 2.5, abs=20.0)
    assert e.runner("1").status.value == "finished"


def test_a_burst_of_late_fixes_refines_the_past_exactly() -> None:
    fs = fixes("dev1", 2.5, seed=1)
    in_order = RaceEngine(RACE)
    feed(in_order, fs)
    hole = [f for f in fs if START + 20 * 60_000 <= f.t < START + 40 * 60_000]
    late = RaceEngine(RACE)
    feed(late, [f for f in fs if f not in hole])
    before = splits(late, "1")
    for f in hole:  # flushed after the coverage hole, 20 minutes late
        late.on_fix("1", f, fs[-1].t)
    assert splits(late, "1") == splits(in_order, "1")
    assert before != splits(late, "1")


@settings(max_examples=50, deadline=None)
@given(st.randoms(use_true_random=False))
def test_any_arrival_order_and_duplicates_give_the_same_splits(rnd: random.Random) -> None:
    fs = fixes("dev2", 3.0, every_s=60, seed=2)
    ref = RaceEngine(RACE)
    feed(ref, fs)
    shuffled = fs + rnd.sample(fs, len(fs) // 3)
    rnd.shuffle(shuffled)
    e = RaceEngine(RACE)
    feed(e, shuffled)
    assert splits(e, "2") == splits(ref, "2")


def test_changes_report_splits_status_and_nothing_for_duplicates() -> None:
    e = RaceEngine(RACE)
    fs = fixes("dev1", 2.5)
    changes = [c for f in fs for c in e.on_fix(None, f, f.t)]
    kinds = [c["kind"] for c in changes]
    assert kinds.count("runner") == len(fs)
    assert {c["checkpoint"] for c in changes if c["kind"] == "split"} == {
        "start", "b1", "corner", "b2", "finish"}
    assert [c["status"] for c in changes if c["kind"] == "status"] == ["finished"]
    assert e.on_fix(None, fs[3], fs[-1].t) == []
    assert e.take_dirty() == {"1"} and e.take_dirty() == set()


def test_chip_read_wins_and_is_reported() -> None:
    e = RaceEngine(RACE)
    fs = fixes("dev1", 2.5)
    feed(e, fs[:60])
    (change,) = e.on_chip_read(ChipRead("1", "b1", START + 790_000), fs[59].t)
    assert change == {"kind": "split", "race": "loop", "bib": "1", "checkpoint": "b1",
                      "t_ms": START + 790_000, "source": "chip"}
    with pytest.raises(EngineInputError, match="no checkpoint 'moon'"):
        e.on_chip_read(ChipRead("1", "moon", START), START)


def test_reads_before_the_start_are_ignored_at_the_start_and_refused_elsewhere() -> None:
    e = RaceEngine(RACE)
    assert e.on_chip_read(ChipRead("1", "start", START - 60_000), START) == []
    with pytest.raises(EngineInputError, match="before the race start"):
        e.on_chip_read(ChipRead("1", "b1", START - 60_000), START)
    assert e.runner("1").splits() == []


def test_status_commands_and_reinstate() -> None:
    e = RaceEngine(RACE)
    feed(e, fixes("dev1", 2.5))
    assert e.runner("1").status.value == "finished"
    (dsq,) = [c for c in e.on_control({"op": "dsq", "bib": "1", "reason": "cut"}, START)
              if c["kind"] == "status"]
    assert (dsq["status"], dsq["reason"]) == ("dsq", "cut")
    assert e.on_control({"op": "dsq", "bib": "1", "reason": "cut"}, START) == []
    e.on_control({"op": "reinstate", "bib": "1"}, START)
    assert e.runner("1").status.value == "finished" and e.runner("1").reason == ""
    e.on_control({"op": "dns", "bib": "2"}, START)
    assert e.board(START)["runners"][-1]["status"] == "dns"
    with pytest.raises(EngineInputError, match="JSON object"):
        e.on_control(["dnf"], START)  # type: ignore[arg-type]


def test_unknown_device_bib_and_command_are_clear_errors() -> None:
    e = RaceEngine(RACE)
    with pytest.raises(EngineInputError, match="device 'x' is not assigned"):
        e.on_fix(None, Fix("x", START, 43.0, -2.3), START)
    with pytest.raises(EngineInputError, match="no runner with bib '99'"):
        e.on_fix("99", Fix("dev1", START, 43.0, -2.3), START)
    with pytest.raises(EngineInputError, match="unknown control op 'fly'"):
        e.on_control({"op": "fly"}, START)
    with pytest.raises(EngineInputError, match="needs 'bib' as a str"):
        e.on_control({"op": "dnf", "bib": 1}, START)


def test_control_dnf_reassign_manual_split_and_weather() -> None:
    e = RaceEngine(RACE)
    (status, *_) = e.on_control({"op": "dnf", "bib": "3", "reason": "knee"}, START + 1000)
    assert (status["status"], status["reason"]) == ("dnf", "knee")
    e.on_control({"op": "reassign", "device": "spare-7", "bib": "2"}, START)
    e.on_fix(None, Fix("spare-7", START + 60_000, *COURSE.position_at(150.0)), START + 60_000)
    assert e.runner("2").last_t == START + 60_000
    changes = e.on_control({"op": "manual_split", "bib": "2", "checkpoint": "b1",
                            "t_ms": START + 700_000}, START + 700_000)
    assert changes[0]["source"] == "manual"
    feed(e, [f for f in fixes("dev1", 2.5) if f.t <= START + 1400_000])  # bib 1 in the loop
    raised = e.on_control({"op": "weather", "zone": "loop", "on": True}, START + 1400_000)
    zone = [c for c in raised if c["alert"]["kind"] == "danger_zone"]
    assert [c["bib"] for c in zone] == ["1"] and zone[0]["action"] == "raised"
    cleared = e.on_control({"op": "weather", "zone": "loop", "on": False}, START + 1400_000)
    assert any(c["action"] == "cleared" and c["alert"]["kind"] == "danger_zone" for c in cleared)


def test_sos_is_raised_at_once_acknowledged_and_resolved() -> None:
    e = RaceEngine(RACE)
    lat, lon = COURSE.position_at(500.0)
    changes = e.on_fix("1", Fix("dev1", START + 300_000, lat, lon, sos=True), START + 301_000)
    (sos,) = [c for c in changes if c["kind"] == "alert"]
    assert sos["alert"]["id"] == "loop:1:sos" and sos["alert"]["severity"] == "critical"
    e.on_control({"op": "ack", "alert_id": "loop:1:sos"}, START + 302_000)
    e.tick(START + 303_000)
    assert e.alerts()[0]["acknowledged"] is True and e.alerts()[0]["kind"] == "sos"
    e.on_control({"op": "resolve_sos", "bib": "1"}, START + 304_000)
    assert all(a["kind"] != "sos" for a in e.alerts())


def test_tick_raises_no_fix_and_runner_view_shows_last_seen_and_estimate() -> None:
    e = RaceEngine(RACE)
    feed(e, [f for f in fixes("dev1", 2.5) if f.t <= START + 1200_000])  # to 3 km
    now = START + 1800_000  # 10 minutes of silence
    raised = e.tick(now)
    assert ("no_fix", "1") in {(c["alert"]["kind"], c["bib"]) for c in raised}
    e.board(now)
    view = e.runner_view("1", now)
    assert view["last_fix_ms"] == START + 1200_000 and view["last_seen_s"] == 600.0
    pos = view["position"]
    assert pos["estimated"] is True and 3000.0 < pos["progress_m"] <= 4000.0
    assert view["rank"] == 1 and view["name"] == "Runner 1"
    assert [s["checkpoint"] for s in view["splits"]] == ["start", "b1"]
    assert view["finish_eta"]["model"] == "record-ratio"
    assert view["finish_eta"]["p10_ms"] <= view["finish_eta"]["t_ms"] <= \
        view["finish_eta"]["p90_ms"]
    assert view["record_delta"].startswith("+")
    json.dumps(view)


def test_board_gaps_between_two_runners_are_times() -> None:
    e = RaceEngine(RACE)
    feed(e, fixes("dev1", 3.0, seed=3))
    feed(e, fixes("dev2", 2.5, seed=4))
    board = e.board(START + 4000_000)
    rows = {r["bib"]: r for r in board["runners"]}
    assert board["leader"] == "1" and rows["2"]["rank"] == 2
    assert rows["2"]["gap_leader_s"] == pytest.approx(L / 2.5 - L / 3.0, abs=30.0)
    assert [f["bib"] for f in board["finishers"]] == ["1", "2"]
    json.dumps(board)


def test_snapshot_round_trip_gives_the_same_board_and_alerts() -> None:
    e = RaceEngine(RACE)
    feed(e, [f for f in fixes("dev1", 2.5) if f.t <= START + 1200_000])
    e.on_chip_read(ChipRead("1", "b1", START + 795_000), START + 1200_000)
    e.on_control({"op": "weather", "zone": "loop", "on": True}, START + 1200_000)
    e.tick(START + 1900_000)
    e.on_control({"op": "ack", "alert_id": "loop:1:no_fix"}, START + 1900_000)
    back = RaceEngine.from_dict(RACE, json.loads(json.dumps(e.to_dict())), START + 1900_000)
    assert back.board(START + 1900_000) == e.board(START + 1900_000)
    assert back.alerts() == e.alerts()
    assert back.runner_state("1") == e.runner_state("1")
    with pytest.raises(EngineInputError, match="snapshot"):
        e.restore_runner({"v": 7})


def test_simulated_zegama_field_splits_match_the_truth_in_any_delivery_order() -> None:
    from race_engine.racefolder import load_race
    from race_engine.simulate import SimOptions, simulate

    race = load_race(Path(__file__).parents[2] / "races" / "zegama-2026")
    sim = simulate(race, np.random.default_rng(3), SimOptions(runners=20))
    pings = list(sim.pings())
    live = RaceEngine(race)
    for f, arrival in pings:  # as ingest received them: late bursts after coverage holes
        live.on_fix(None, f, arrival)
    replay = RaceEngine(race)
    for f, arrival in sorted(pings, key=lambda p: p[0].t):
        replay.on_fix(None, f, arrival)
    errors = []
    for c in sim.crossings:
        s = live.runner(c.bib).split(c.checkpoint)
        if c.checkpoint != "start" and s is not None:
            errors.append(abs(s.t_ms - c.t) / 1000)
    assert len(errors) >= 0.9 * (len(sim.crossings) - 20)
    assert np.median(errors) < 5.0 and np.percentile(errors, 95) < 30.0
    for bib in live.runners:
        assert live.runner(bib).splits() == replay.runner(bib).splits()
    finished = {o.bib for o in sim.outcomes if o.status == "finished" and not o.incidents}
    assert finished <= {row["bib"] for row in live.board(pings[-1][1])["finishers"]}


# ------------------------------------------------------- implausible chip reads

HELD = "implausible_chip_read"


def _held_alerts(changes: list[dict[str, object]]) -> list[dict[str, object]]:
    return [c for c in changes if c["kind"] == "alert"
            and c["alert"]["kind"] == HELD]  # type: ignore[index]


def test_a_chip_read_implying_12_m_s_is_held_the_gps_split_stays_and_it_is_an_alert() -> None:
    fs = fixes("dev1", 2.5)
    gps_only = RaceEngine(RACE)
    feed(gps_only, fs)
    corner = gps_only.runner("1").split("corner")
    assert corner is not None and corner.source == "gps"
    read_t = corner.t_ms + round(2000 / 12.0 * 1000)  # the 2 km to b2 at 12 m/s
    e = RaceEngine(RACE)
    feed(e, [f for f in fs if f.t <= read_t])
    changes = e.on_chip_read(ChipRead("1", "b2", read_t, "mat-b2"), read_t + 2_000)
    assert [c for c in changes if c["kind"] == "split"] == []
    ((raised),) = _held_alerts(changes)
    alert = raised["alert"]
    assert raised["action"] == "raised"
    assert (alert["id"], alert["severity"], alert["subject"], alert["raised_ms"]) == (
        f"loop:1:{HELD}:b2", "low", "b2", read_t)
    assert alert["progress_m"] == 6000.0
    for part in ("Street top again (b2)", "12.0 m/s from the split at Far corner",
                 f"t_ms {read_t}", "held", "GPS",
                 f'{{"op": "manual_split", "bib": "1", "checkpoint": "b2", "t_ms": {read_t}}}'):
        assert part in alert["message"]
    feed(e, [f for f in fs if f.t > read_t])  # the runner goes on; the read stays held
    assert splits(e, "1") == splits(gps_only, "1")
    assert e.runner("1").split("b2").source == "gps"  # type: ignore[union-attr]
    assert e.runner("1").status.value == "finished"
    e.tick(fs[-1].t + 3_600_000)  # it lasts after the finish, until race control decides
    assert [a["id"] for a in e.alerts() if a["kind"] == HELD] == [f"loop:1:{HELD}:b2"]


def test_a_plausible_chip_read_still_overrides_the_gps_split() -> None:
    e = RaceEngine(RACE)
    fs = fixes("dev1", 2.5)
    feed(e, fs)
    gps = e.runner("1").split("b2")
    assert gps is not None
    changes = e.on_chip_read(ChipRead("1", "b2", gps.t_ms + 9_000), fs[-1].t)
    assert changes == [{"kind": "split", "race": "loop", "bib": "1", "checkpoint": "b2",
                        "t_ms": gps.t_ms + 9_000, "source": "chip"}]
    e.tick(fs[-1].t)
    assert not [a for a in e.alerts() if a["kind"] == HELD]


def test_a_read_after_the_runners_next_split_is_held() -> None:
    e = RaceEngine(RACE)
    fs = fixes("dev1", 2.5)
    feed(e, fs)
    corner = e.runner("1").split("corner")
    assert corner is not None
    late = corner.t_ms + 60_000  # a b1 read a minute after the runner passed the corner
    (raised,) = _held_alerts(e.on_chip_read(ChipRead("1", "b1", late), fs[-1].t))
    assert "comes after the split at Far corner (corner)" in raised["alert"]["message"]
    assert e.runner("1").split("b1").source == "gps"  # type: ignore[union-attr]


def test_the_bound_follows_the_races_record_splits() -> None:
    import dataclasses

    # 6 m/s from the gun to b1: under 7 m/s, but faster than 1.5 x the record's speed.
    read = ChipRead("1", "b1", START + round(2000 / 6.0 * 1000))
    with_record = RaceEngine(RACE)
    assert _held_alerts(with_record.on_chip_read(read, read.t))
    assert with_record.runner("1").split("b1") is None
    no_record = RaceEngine(dataclasses.replace(RACE, record=()))
    assert not _held_alerts(no_record.on_chip_read(read, read.t))
    assert no_record.runner("1").split("b1").source == "chip"  # type: ignore[union-attr]


def test_race_control_accepts_a_held_read_with_a_manual_split() -> None:
    e = RaceEngine(RACE)
    fs = fixes("dev1", 2.5)
    feed(e, fs)
    corner = e.runner("1").split("corner")
    assert corner is not None
    read_t = corner.t_ms + 150_000
    assert _held_alerts(e.on_chip_read(ChipRead("1", "b2", read_t), fs[-1].t))
    e.on_control({"op": "ack", "alert_id": f"loop:1:{HELD}:b2"}, fs[-1].t)
    changes = e.on_control({"op": "manual_split", "bib": "1", "checkpoint": "b2",
                            "t_ms": read_t}, fs[-1].t)
    assert {"kind": "split", "race": "loop", "bib": "1", "checkpoint": "b2",
            "t_ms": read_t, "source": "manual"} in changes
    assert [c["action"] for c in _held_alerts(changes)] == ["cleared"]
    assert not [a for a in e.alerts() if a["kind"] == HELD]


def test_held_reads_replay_restore_and_retry_the_same() -> None:
    fs = fixes("dev1", 2.5)
    inputs: list[Fix | ChipRead] = [*fs[:95], ChipRead("1", "b2", START + 1_760_000), *fs[95:]]

    def run(lag_ms: int) -> tuple[RaceEngine, list[dict[str, object]]]:
        e, log = RaceEngine(RACE), []
        for x in inputs:
            if isinstance(x, Fix):
                log += e.on_fix(None, x, x.t + lag_ms)
            else:
                log += e.on_chip_read(x, x.t + lag_ms)
        log += e.tick(fs[-1].t + lag_ms)
        return e, [c for c in log if c["kind"] == "alert"]

    live, live_alerts = run(2_000)
    replayed, replayed_alerts = run(600_000)  # the same inputs, later and faster
    assert [c["alert"]["id"] for c in _held_alerts(live_alerts)] == [f"loop:1:{HELD}:b2"]
    assert _held_alerts(replayed_alerts) == _held_alerts(live_alerts)
    assert replayed.runner_state("1") == live.runner_state("1")
    assert live.runner_state("1")["held"]["b2"]["t_ms"] == START + 1_760_000
    back = RaceEngine.from_dict(RACE, json.loads(json.dumps(live.to_dict())), fs[-1].t)
    assert back.alerts() == live.alerts() and back.runner_state("1") == live.runner_state("1")
    assert back.on_chip_read(ChipRead("1", "b2", START + 1_760_000), fs[-1].t) == []  # a retry
    assert splits(back, "1") == splits(live, "1")


def test_the_card_gives_the_chance_of_making_each_cutoff_still_ahead() -> None:
    e = RaceEngine(RACE)  # the finish closes at 3 h
    feed(e, [f for f in fixes("dev1", 2.5) if f.t <= START + 1200_000])  # 3 km in 20 min
    feed(e, [f for f in fixes("dev2", 0.9) if f.t <= START + 3000_000])  # 2.7 km in 50 min
    now = START + 3000_000
    fast, slow = e.runner_view("1", now)["cutoffs"], e.runner_view("2", now)["cutoffs"]
    assert [c["checkpoint"] for c in fast] == ["finish"] and fast[0]["p_make"] > 0.9
    assert fast[0]["name"] == "Finish" and fast[0]["cutoff_ms"] == START + 3 * 3600_000
    assert slow[0]["p_make"] < fast[0]["p_make"]
    done = RaceEngine(RACE)
    feed(done, fixes("dev1", 2.5))
    assert done.runner_view("1", START + 4 * 3600_000)["cutoffs"] == []  # finished
