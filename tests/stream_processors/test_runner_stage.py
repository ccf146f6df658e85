"""The per-runner stage without Kafka: cards, alerts, summaries, commands, settings."""

from __future__ import annotations

import pytest
from stage_fixtures import by_topic, fed_race, flat, ping, zegama

from race_engine.board import build_board
from race_engine.engine import EngineInputError
from race_engine.summary import summarize
from stream_processors.runner_stage import RunnerStage, Timing
from zegama_live.records.internal import RaceSettings
from zegama_live.topics import ALERTS, RUNNER_UPDATES


@pytest.fixture(scope="module")
def race():  # type: ignore[no-untyped-def]
    return zegama()


def test_every_owned_runner_gets_a_card_and_seqs_increase(race) -> None:  # type: ignore[no-untyped-def]
    fed = fed_race(race)
    cards = by_topic(fed.records, RUNNER_UPDATES)
    assert {c["bib"] for c in cards} == {e.bib for e in race.entrants}
    card = next(c for c in reversed(cards) if c["card"]["last_fix_ms"] is not None)
    assert card["card"]["bib"] == card["bib"] and card["track"][0] == [0.0, 0.0]
    assert card["card"]["rank"] is None  # ranks and gaps are the per-race stage's
    seqs = [v["seq"] for _, _, v in fed.records]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert seqs[0] >= (race.start_ms - 3_600_000) * 1000  # wall ms * 1000 (sequence.py)


def test_summaries_rebuild_the_board_of_the_runners_state(race) -> None:  # type: ignore[no-untyped-def]
    from stage_fixtures import board_of

    fed = fed_race(race, runners=8)
    assert any(s.start > 0 for s in fed.summaries)  # tails, not whole curves each time
    stage = board_of(race, fed.summaries)
    engine = fed.runners.engines[race.id]
    now = fed.wall
    full = build_board(race.id, engine.runners, engine.entrants, engine.curve, now)
    assert build_board(race.id, stage.summaries, stage.entrants, stage.curve, now) == full
    assert stage.torn == 0


def test_a_card_waits_for_its_interval_and_then_carries_every_change(race) -> None:  # type: ignore[no-untyped-def]
    stage = RunnerStage({race.id: race}, Timing(card_ms=2_000))
    bib = race.entrants[0].bib
    stage.take_over(race.id, bib, None)
    t0 = race.start_ms + 600_000
    stage.on_ping(ping(race, bib, t0, 2_000.0), t0)
    assert [c["bib"] for c in by_topic(stage.publish(t0)[0], RUNNER_UPDATES)] == [bib]
    stage.on_ping(ping(race, bib, t0 + 10_000, 2_030.0), t0 + 500)
    records, batches = stage.publish(t0 + 500)
    assert by_topic(records, RUNNER_UPDATES) == [] and [s.bib for s in flat(batches)] == [bib]
    assert by_topic(stage.publish(t0 + 1_500)[0], RUNNER_UPDATES) == []
    cards = by_topic(stage.publish(t0 + 2_000)[0], RUNNER_UPDATES)
    assert [c["card"]["last_fix_ms"] for c in cards] == [t0 + 10_000]
    assert by_topic(stage.publish(t0 + 4_500)[0], RUNNER_UPDATES) == []  # nothing new


def test_a_runner_not_taken_over_is_refused(race) -> None:  # type: ignore[no-untyped-def]
    stage = RunnerStage({race.id: race})
    with pytest.raises(EngineInputError, match="not taken over"):
        stage.on_ping(ping(race, race.entrants[0].bib, race.start_ms, 10.0), race.start_ms)


def test_runner_commands_say_what_came_of_them(race) -> None:  # type: ignore[no-untyped-def]
    stage = RunnerStage({race.id: race})
    bib = race.entrants[0].bib
    stage.take_over(race.id, bib, None)
    dnf = {"op": "dnf", "bib": bib, "reason": "hypothermia", "race": race.id}
    assert stage.on_command(dnf, race.start_ms) == ("applied", None)
    assert stage.on_command(dnf, race.start_ms) == ("unchanged", None)
    _, batches = stage.publish(race.start_ms)
    assert [(s.bib, s.status, s.reason) for s in flat(batches)] == [(bib, "dnf", "hypothermia")]
    result, error = stage.on_command({**dnf, "bib": race.entrants[1].bib}, race.start_ms)
    assert result == "rejected" and "not taken over" in (error or "")


def test_an_acknowledged_alert_survives_a_take_over(race) -> None:  # type: ignore[no-untyped-def]
    stage = RunnerStage({race.id: race})
    bib = race.entrants[0].bib
    stage.take_over(race.id, bib, None)
    t0 = race.start_ms + 600_000
    stage.on_ping(ping(race, bib, t0, 2_000.0), t0)
    stage.publish(t0)
    wall = t0 + 3_600_000  # an hour without a fix
    raised = [a for a in by_topic(stage.publish(wall)[0], ALERTS) if a["action"] == "raised"]
    alert = next(a["alert"] for a in raised if a["alert"]["kind"] == "no_fix")
    ack = {"op": "ack", "alert_id": alert["id"], "race": race.id, "by": "maite"}
    assert stage.on_command(ack, wall) == ("applied", None)
    acked = by_topic(stage.publish(wall + 500)[0], ALERTS)
    assert [(a["action"], a["by"]) for a in acked] == [("acknowledged", "maite")]

    saved = {}
    for k, v in stage.writes(race.id, bib):
        saved[k] = v
    import orjson

    key = f"{race.id}:{bib}".encode()
    again = RunnerStage({race.id: race})
    state = again.store.read(key, orjson.loads(saved[key]),
                             lambda k: orjson.loads(saved[k]) if k in saved else None)
    again.take_over(race.id, bib, state)
    again.clock_ms[race.id] = t0
    out = by_topic(again.publish(wall + 1_000)[0], ALERTS)
    assert not [a for a in out if a["alert"]["id"] == alert["id"]]  # no second "raised"
    assert next(a for a in again.engines[race.id].alerts()
                if a["id"] == alert["id"])["acknowledged"]


def test_weather_settings_raise_zone_alerts_for_runners_inside(race) -> None:  # type: ignore[no-untyped-def]
    zone = race.danger_zones[0]
    stage = RunnerStage({race.id: race}, Timing(tick_ms=10**9))
    bib = race.entrants[0].bib
    stage.take_over(race.id, bib, None)
    t0 = race.start_ms + 3 * 3_600_000
    inside = (zone.km_from + zone.km_to) / 2 * 1000.0
    stage.on_ping(ping(race, bib, t0, inside), t0)
    stage.publish(t0)
    on = RaceSettings(race=race.id, seq=5, weather=[zone.id], devices={})
    assert stage.on_settings(on) and not stage.on_settings(on)  # an old one is ignored
    kinds = [(a["action"], a["alert"]["kind"]) for a in by_topic(stage.publish(t0 + 500)[0],
                                                                  ALERTS)]
    assert ("raised", "danger_zone") in kinds
    off = RaceSettings(race=race.id, seq=6, weather=[], devices={})
    assert stage.on_settings(off)
    kinds = [(a["action"], a["alert"]["kind"]) for a in by_topic(stage.publish(t0 + 1_000)[0],
                                                                  ALERTS)]
    assert ("cleared", "danger_zone") in kinds


def test_an_excursion_off_the_course_inside_one_batch_is_raised(race) -> None:  # type: ignore[no-untyped-def]
    """Off and back on within one batch (a race played fast, or a late burst)."""
    stage = RunnerStage({race.id: race}, Timing(tick_ms=10**9))
    bib = race.entrants[0].bib
    stage.take_over(race.id, bib, None)
    t0 = race.start_ms + 3_600_000
    for k in range(40):  # a fix every 10 s; off the course from 100 s to 300 s
        stage.on_ping(ping(race, bib, t0 + k * 10_000, 5_000.0 + 3 * k,
                           400.0 if 10 <= k < 30 else 0.0), t0)
    mine = [(a["action"], a["alert"]["kind"]) for a in by_topic(
        stage.publish(t0 + 400_000)[0], ALERTS) if a["alert"]["kind"] == "off_course"]
    assert mine == [("raised", "off_course"), ("cleared", "off_course")]


def test_a_stop_wholly_inside_one_batch_of_fixes_is_raised_and_cleared(race) -> None:  # type: ignore[no-untyped-def]
    stage = RunnerStage({race.id: race}, Timing(tick_ms=10**9))
    bib, other = race.entrants[0].bib, race.entrants[1].bib
    t0 = race.start_ms + 3_600_000
    for who, stop in ((bib, range(10, 22)), (other, range(10, 40))):
        stage.take_over(race.id, who, None)
        m = 5_000.0
        for k in range(40):
            stage.on_ping(ping(race, who, t0 + k * 60_000, m), t0)
            m += 0.0 if k in stop else 150.0
    alerts = [(a["action"], a["alert"]["bib"]) for a in by_topic(
        stage.publish(t0 + 40 * 60_000)[0], ALERTS) if a["alert"]["kind"] == "stopped"]
    assert alerts == [("raised", bib), ("cleared", bib), ("raised", other)]


def test_a_summary_after_a_take_over_carries_the_whole_curve(race) -> None:  # type: ignore[no-untyped-def]
    fed = fed_race(race, runners=2)
    bib = fed.summaries[-1].bib
    r = fed.runners.engines[race.id].runners[bib]
    fed.runners.take_over(race.id, bib, r.to_dict())
    _, batches = fed.runners.publish(fed.wall + 1)
    whole = next(s for s in flat(batches) if s.bib == bib)
    assert whole.start == 0 and len(whole.m) == len(r.a_m)
    assert summarize(r).current() is not None


def test_an_sos_is_raised_by_its_fix_and_cleared_by_race_control(race) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    stage = RunnerStage({race.id: race}, Timing(tick_ms=10**9))
    bib = race.entrants[0].bib
    stage.take_over(race.id, bib, None)
    t0 = race.start_ms + 600_000
    p = ping(race, bib, t0, 2_000.0)
    stage.on_ping(dataclasses.replace(p, fix=dataclasses.replace(p.fix, sos=True)), t0)
    alerts = by_topic(stage.publish(t0)[0], ALERTS)
    assert [(a["action"], a["alert"]["kind"]) for a in alerts] == [("raised", "sos")]
    assert alerts[0]["alert"]["severity"] == "critical"
    cmd = {"op": "resolve_sos", "bib": bib, "race": race.id, "by": "maite"}
    assert stage.on_command(cmd, t0 + 1_000) == ("applied", None)
    alerts = by_topic(stage.publish(t0 + 1_000)[0], ALERTS)
    assert [(a["action"], a["alert"]["kind"], a["by"]) for a in alerts] == [
        ("cleared", "sos", "maite")]


def test_a_held_chip_read_is_published_stored_and_accepted_by_race_control(race) -> None:  # type: ignore[no-untyped-def]
    import orjson

    from race_engine.model import ChipRead
    from zegama_live.records import ChipReadRecord

    stage = RunnerStage({race.id: race}, Timing(tick_ms=10**9))
    bib = race.entrants[0].bib
    stage.take_over(race.id, bib, None)
    t0 = race.start_ms + 2_400_000  # 40 min in, at Otzaurte (7 km)
    stage.on_ping(ping(race, bib, t0, 7_000.0), t0)
    stage.publish(t0)
    read = t0 + 142_000  # Ultzama, 1.7 km on, at 12 m/s
    stage.on_chip_read(ChipReadRecord(race.id, ChipRead(bib, "ultzama", read), read), read)
    records, _ = stage.publish(read)
    (alert,) = [a for a in by_topic(records, ALERTS) if a["action"] == "raised"]
    assert alert["alert"]["id"] == f"{race.id}:{bib}:implausible_chip_read:ultzama"
    assert "12.0 m/s" in alert["alert"]["message"]
    assert stage.engines[race.id].runner(bib).split("ultzama") is None

    saved = dict(stage.writes(race.id, bib))
    key = f"{race.id}:{bib}".encode()
    again = RunnerStage({race.id: race}, Timing(tick_ms=10**9))
    again.take_over(race.id, bib, again.store.read(
        key, orjson.loads(saved[key]), lambda k: orjson.loads(saved[k]) if k in saved else None))
    assert "ultzama" in again.engines[race.id].runner(bib).held
    assert not by_topic(again.publish(read + 1_000)[0], ALERTS)  # no second "raised"
    cmd = {"op": "manual_split", "bib": bib, "checkpoint": "ultzama", "t_ms": read,
           "race": race.id, "by": "maite"}
    assert again.on_command(cmd, read + 2_000) == ("applied", None)
    alerts = by_topic(again.publish(read + 2_000)[0], ALERTS)
    assert [(a["action"], a["alert"]["kind"], a["by"]) for a in alerts] == [
        ("cleared", "implausible_chip_read", "maite")]
