"""The per-race stage without Kafka: standings from summaries, deltas, race commands,
settings, audits and restarts; and the envelope of control commands."""

from __future__ import annotations

import pytest
from stage_fixtures import board_of, by_topic, fed_race, zegama

from race_engine.summary import RunnerSummary
from stream_processors.commands import CommandError, decode_command
from stream_processors.race_stage import RaceStage, Timing
from zegama_live.topics import CONTROL_LOG, STANDINGS


@pytest.fixture(scope="module")
def race():  # type: ignore[no-untyped-def]
    return zegama()


@pytest.fixture(scope="module")
def fed(race):  # type: ignore[no-untyped-def]
    return fed_race(race, runners=8)


def test_updates_applied_to_the_first_snapshot_give_the_latest_board(race, fed) -> None:  # type: ignore[no-untyped-def]
    stage = RaceStage(race, Timing(snapshot_ms=10**12))
    wall = race.start_ms
    records = []
    for n, s in enumerate(fed.summaries):
        stage.on_summary(s)
        if n % 7 == 0:
            wall += 500
            records += stage.publish(wall)
    records += stage.publish(wall + 500)
    standings = by_topic(records, STANDINGS)
    assert standings[0]["type"] == "snapshot" and len(standings) > 10
    board = standings[0]["board"]
    rows = {r["bib"]: r for r in board["runners"]}
    cps = {c["id"]: c for c in board["checkpoints"]}
    base = standings[0]["seq"]
    for u in standings[1:]:
        assert u["type"] == "update" and u["base_seq"] == base
        base = u["seq"]
        rows.update({r["bib"]: r for r in u["rows"]})
        cps.update({c["id"]: c for c in u["checkpoints"]})
        board = {**board, "leader": u["leader"], "finishers": u.get("finishers",
                                                                    board["finishers"])}
        order = u["order"]
    final = RaceStage(race)
    for s in fed.summaries:
        final.on_summary(s)
    latest = by_topic(final.publish(wall + 500), STANDINGS)[0]["board"]
    strip = lambda r: {k: v for k, v in r.items() if k != "last_seen_s"}  # noqa: E731
    assert [strip(rows[b]) for b in order] == [strip(r) for r in latest["runners"]]
    assert [cps[c["id"]] for c in latest["checkpoints"]] == latest["checkpoints"]
    seqs = [v["seq"] for _, _, v in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_nothing_new_publishes_nothing_until_the_next_snapshot(race, fed) -> None:  # type: ignore[no-untyped-def]
    stage = board_of(race, fed.summaries)
    wall = race.start_ms
    assert by_topic(stage.publish(wall), STANDINGS)[0]["type"] == "snapshot"
    assert stage.publish(wall + 500) == []
    assert by_topic(stage.publish(wall + 10_000), STANDINGS)[0]["type"] == "snapshot"


def test_a_tail_that_does_not_fit_waits_for_the_whole_curve(race, fed) -> None:  # type: ignore[no-untyped-def]
    tail = next(s for s in fed.summaries if s.start > 0)
    stage = RaceStage(race)
    assert stage.on_summary(tail)
    assert stage.torn == 1 and not stage.summaries[tail.bib].curve_m
    assert stage.summaries[tail.bib].status.value == tail.status  # the rest is taken


def test_weather_and_reassign_change_the_settings_every_worker_reads(race) -> None:  # type: ignore[no-untyped-def]
    stage = RaceStage(race)
    wall = race.start_ms
    first = stage.settings(wall)
    assert first is not None and first.weather == [] and stage.settings(wall) is None
    zone = race.danger_zones[0].id
    cmd = {"op": "weather", "zone": zone, "on": True, "race": race.id, "id": "c1", "by": "m"}
    assert stage.on_command(cmd, wall) == ("applied", None)
    assert stage.on_command({**cmd, "zone": "nowhere"}, wall)[0] == "rejected"
    assert stage.on_command(cmd, wall) == ("unchanged", None)
    bib = race.entrants[3].bib
    move = {"op": "reassign", "device": "spare-1", "bib": bib, "race": race.id}
    assert stage.on_command(move, wall) == ("applied", None)
    assert stage.on_command({**move, "bib": "nobody"}, wall)[0] == "rejected"
    now = stage.settings(wall + 1)
    assert now is not None and now.weather == [zone] and now.devices["spare-1"] == bib
    assert now.seq > first.seq

    again = RaceStage.restore(race, stage.meta(), [])
    assert again.weather == {zone} and again.devices["spare-1"] == bib
    assert again.seq.last == stage.seq.last
    restarted = again.settings(wall + 2)  # a new owner sends the settings again
    assert restarted is not None and restarted.weather == [zone]


def test_audit_entries_are_published_on_the_control_log(race) -> None:  # type: ignore[no-untyped-def]
    stage = RaceStage(race)
    stage.on_audit({"v": 1, "race": race.id, "id": "c9", "result": "applied"})
    logged = by_topic(stage.publish(race.start_ms), CONTROL_LOG)
    assert [(e["id"], e["result"]) for e in logged] == [("c9", "applied")]


def test_a_restored_stage_starts_with_a_snapshot_of_what_it_held(race, fed) -> None:  # type: ignore[no-untyped-def]
    stage = board_of(race, fed.summaries)
    before = by_topic(stage.publish(race.start_ms), STANDINGS)[0]
    held = [s for s in stage.summaries.values() if isinstance(s, RunnerSummary)]
    again = RaceStage.restore(race, stage.meta(), held)
    after = by_topic(again.publish(race.start_ms), STANDINGS)[0]
    assert after["type"] == "snapshot" and after["seq"] > before["seq"]
    assert after["board"]["runners"] == before["board"]["runners"]


@pytest.mark.parametrize("value, message", [
    (b"not json", "not JSON"),
    (b"[1]", "JSON object"),
    (b'{"op": "dnf", "race": "elsewhere", "bib": "1"}', "not one of"),
    (b'{"op": "fly", "race": "zegama-2026"}', "unknown control op"),
])
def test_bad_commands_are_refused_with_a_reason(value: bytes, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        decode_command(value, None, {"zegama-2026"})


def test_a_command_takes_its_race_from_the_key() -> None:
    cmd = decode_command(b'{"op": "ack", "alert_id": "x"}', b"zegama-2026", {"zegama-2026"})
    assert cmd["race"] == "zegama-2026"
