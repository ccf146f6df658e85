"""The per-race and per-runner stages without Kafka: records, sequence numbers, deltas,
commands and restarts."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from race_engine.racefolder import load_race
from race_engine.simulate import SimOptions, simulate
from stream_processors.commands import CommandError, decode_command
from stream_processors.race_stage import SEQ_RESTART_GAP, RaceStage, Timing
from stream_processors.runner_stage import RunnerStage
from zegama_live.records import PingRecord
from zegama_live.topics import ALERTS, CONTROL_LOG, RUNNER_UPDATES, STANDINGS

RACE_DIR = Path(__file__).resolve().parents[2] / "races" / "zegama-2026"
Journal = tuple[str, str, int, list[Any], int]  # (race, bib, n0, entries, digest after)


@pytest.fixture(scope="module")
def race():  # type: ignore[no-untyped-def]
    return load_race(RACE_DIR)


@pytest.fixture(scope="module")
def fed(race):  # type: ignore[no-untyped-def]
    """A runner stage fed a 6-runner simulated race, and the journals it hands on:
    ``(race, bib, n0, entries, digest)``."""
    sim = simulate(race, np.random.default_rng(3), SimOptions(runners=6, incidents=False))
    bibs = {e.device: e.bib for e in race.entrants}
    stage = RunnerStage({race.id: race})
    journals: list[Journal] = []

    def take() -> list[Journal]:
        return [(r, bib, n0, entries, stage.engine(r).runners[bib].digest())
                for r, bib, n0, entries in stage.take_journals()]

    for n, (fix, arrival) in enumerate(sim.pings()):
        bib = bibs[fix.device]
        if not stage.is_loaded(race.id, bib):
            stage.load(race.id, bib, None)
        stage.on_ping(PingRecord(race.id, bib, fix, arrival, "batch"), arrival)
        if n % 200 == 0:
            journals += take()
    journals += take()
    return stage, journals


def feed_all(stage: RaceStage, journals: list[Journal], wall: int) -> None:
    for _, bib, n0, entries, digest in journals:
        assert stage.on_journal(bib, n0, entries, wall, digest) is not None
    assert stage.sync_requests(wall) == [] and stage.diverged == 0


def by_topic(records: list[tuple[str, str, dict[str, Any]]], topic: str) -> list[dict[str, Any]]:
    return [v for t, _, v in records if t == topic]


def test_records_carry_one_increasing_sequence_across_topics(race, fed) -> None:  # type: ignore[no-untyped-def]
    _, journals = fed
    stage = RaceStage(race, Timing(snapshot_ms=60_000))
    seqs: list[int] = []
    wall = race.start_ms
    for n, (_, bib, n0, entries, _) in enumerate(journals):
        stage.on_journal(bib, n0, entries, wall)
        if n % 5 == 0:
            wall += 500
            seqs += [v["seq"] for _, _, v in stage.publish(wall)]
    assert len(seqs) > 20
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_updates_applied_to_the_first_snapshot_give_the_latest_board(race, fed) -> None:  # type: ignore[no-untyped-def]
    _, journals = fed
    stage = RaceStage(race, Timing(snapshot_ms=10**12))
    out: list[tuple[str, str, dict[str, Any]]] = []
    wall = race.start_ms
    for n, (_, bib, n0, entries, _) in enumerate(journals):
        stage.on_journal(bib, n0, entries, wall)
        if n % 3 == 0:
            wall += 500
            out += stage.publish(wall)
    out += stage.publish(wall + 500)
    standings = by_topic(out, STANDINGS)
    assert standings[0]["type"] == "snapshot"
    assert {r["type"] for r in standings[1:]} == {"update"}
    board = standings[0]["board"]
    for upd in standings[1:]:
        rows = {r["bib"]: r for r in board["runners"]} | {r["bib"]: r for r in upd["rows"]}
        board["runners"] = [rows[b] for b in upd["order"]]
        cps = {c["id"]: c for c in board["checkpoints"]} | {c["id"]: c for c in upd["checkpoints"]}
        board["checkpoints"] = [cps[c["id"]] for c in board["checkpoints"]]
    final = stage.engine.board(stage.now(wall + 500))
    assert board["checkpoints"] == final["checkpoints"]
    assert [r["bib"] for r in board["runners"]] == [r["bib"] for r in final["runners"]]
    assert [r["rank"] for r in board["runners"]] == [r["rank"] for r in final["runners"]]
    # an update names the standings record it follows
    assert all(u["base_seq"] == p["seq"] for p, u in itertools.pairwise(standings))


def test_a_changed_runner_gets_one_card_with_its_track(race, fed) -> None:  # type: ignore[no-untyped-def]
    _, journals = fed
    stage = RaceStage(race)
    feed_all(stage, journals, race.start_ms)
    cards = by_topic(stage.publish(race.start_ms), RUNNER_UPDATES)
    assert sorted(c["bib"] for c in cards) == sorted({j[1] for j in journals})
    card = cards[0]
    assert card["card"]["bib"] == card["bib"] and card["track"][0] == [0.0, 0.0]
    assert [p[1] for p in card["track"]] == sorted(p[1] for p in card["track"])
    assert by_topic(stage.publish(race.start_ms + 500), RUNNER_UPDATES) == []


def test_weather_raises_zone_alerts_and_an_audit_entry(race, fed) -> None:  # type: ignore[no-untyped-def]
    _, journals = fed
    stage = RaceStage(race)
    feed_all(stage, journals, race.start_ms)
    stage.publish(race.start_ms)
    zone = race.danger_zones[0].id
    cmd = {"op": "weather", "zone": zone, "on": True, "race": race.id, "id": "c1", "by": "maite"}
    assert stage.on_command(cmd, race.start_ms) == ("applied", None)
    assert stage.on_command({**cmd, "zone": "nowhere"}, race.start_ms)[0] == "rejected"
    assert stage.on_command(cmd, race.start_ms) == ("unchanged", None)


def test_an_acknowledged_alert_stays_acknowledged_after_a_restart(race, fed) -> None:  # type: ignore[no-untyped-def]
    runners, journals = fed
    stage = RaceStage(race)
    feed_all(stage, journals, race.start_ms)
    saved = [runners.snapshot(rid, bib) for rid, bib in runners.loaded()]
    wall = max(s["last"]["t"] for s, _ in saved) + 3_600_000  # an hour of silence
    raised = [v for v in by_topic(stage.publish(wall), ALERTS) if v["action"] == "raised"]
    assert raised
    alert = raised[0]["alert"]
    stage.on_command({"op": "ack", "alert_id": alert["id"], "race": race.id, "by": "maite"},
                     wall)
    acked = by_topic(stage.publish(wall + 500), ALERTS)
    assert [(a["action"], a["by"]) for a in acked] == [("acknowledged", "maite")]

    again = RaceStage.restore(race, stage.meta(), saved)
    assert again.counts == stage.counts
    assert again.seq == stage.seq + SEQ_RESTART_GAP
    out = again.publish(wall + 1000)
    assert by_topic(out, STANDINGS)[0]["type"] == "snapshot"
    assert not [a for a in by_topic(out, ALERTS) if a["alert"]["id"] == alert["id"]]
    assert next(a for a in again.engine.alerts() if a["id"] == alert["id"])["acknowledged"]


def test_runner_commands_say_what_came_of_them(race, fed) -> None:  # type: ignore[no-untyped-def]
    stage, _ = fed
    bib = stage.loaded()[0][1]
    dnf = {"op": "dnf", "bib": bib, "reason": "hypothermia", "race": race.id}
    assert stage.on_command(dnf, race.start_ms) == ("applied", None)
    assert stage.on_command(dnf, race.start_ms) == ("unchanged", None)
    (_, _, _, entries), = [j for j in stage.take_journals() if j[1] == bib]
    assert entries == [["st", "dnf", "hypothermia", race.start_ms]]
    assert stage.snapshot(race.id, bib)[0]["status"] == "dnf"
    result, error = stage.on_command({**dnf, "bib": "no-such-bib"}, race.start_ms)
    assert result == "rejected" and "no-such-bib" in (error or "")


def test_repeated_entries_are_skipped_and_a_gap_asks_for_the_runner(race, fed) -> None:  # type: ignore[no-untyped-def]
    runners, journals = fed
    bib = journals[0][1]
    mine = [j for j in journals if j[1] == bib]
    assert len(mine) >= 3
    stage = RaceStage(race)
    _, _, n0, entries, _ = mine[0]
    assert stage.on_journal(bib, n0, entries, race.start_ms) == entries
    assert stage.on_journal(bib, n0, entries, race.start_ms) == []  # sent again: skipped
    assert stage.on_journal(bib, mine[2][2], mine[2][3], race.start_ms) is None  # 1 missing
    assert stage.sync_requests(race.start_ms) == [bib]
    assert stage.sync_requests(race.start_ms + 1_000) == []  # asked already
    assert stage.sync_requests(race.start_ms + 10_000) == [bib]  # no answer: ask again
    state, n = runners.snapshot(race.id, bib)
    stage.on_sync(state, n, race.start_ms)
    assert stage.counts[bib] == n and stage.sync_requests(race.start_ms + 60_000) == []
    assert stage.engine.runner_state(bib) == state


def test_audit_entries_are_published_on_the_control_log(race) -> None:  # type: ignore[no-untyped-def]
    stage = RaceStage(race)
    stage.on_audit({"v": 1, "race": race.id, "id": "c9", "result": "applied"})
    logged = by_topic(stage.publish(race.start_ms), CONTROL_LOG)
    assert [(e["id"], e["result"]) for e in logged] == [("c9", "applied")]


@pytest.mark.parametrize("value, message", [
    (b"not json", "not JSON"),
    (b"[1]", "JSON object"),
    (b'{"op": "dnf", "race": "elsewhere", "bib": "1"}', "not one of"),
    (b'{"op": "fly", "race": "zegama-2026"}', "unknown control op"),
    (b'{"op": "dnf", "race": "zegama-2026"}', "needs 'bib'"),
])
def test_bad_commands_are_refused_with_a_reason(value: bytes, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        decode_command(value, None, {"zegama-2026"})


def test_a_command_takes_its_race_from_the_key() -> None:
    cmd = decode_command(b'{"op": "ack", "alert_id": "x"}', b"zegama-2026", {"zegama-2026"})
    assert cmd["race"] == "zegama-2026"


def test_a_runner_s_card_waits_for_its_interval_and_then_carries_every_change(race, fed) -> None:  # type: ignore[no-untyped-def]
    _, journals = fed
    bib = journals[0][1]
    mine = [j for j in journals if j[1] == bib]
    stage = RaceStage(race, Timing(card_ms=2_000))
    wall = race.start_ms
    stage.on_journal(bib, mine[0][2], mine[0][3], wall)
    assert [c["bib"] for c in by_topic(stage.publish(wall), RUNNER_UPDATES)] == [bib]
    for _, _, n0, entries, _ in mine[1:3]:
        stage.on_journal(bib, n0, entries, wall + 500)
    assert by_topic(stage.publish(wall + 500), RUNNER_UPDATES) == []
    assert by_topic(stage.publish(wall + 1_500), RUNNER_UPDATES) == []
    cards = by_topic(stage.publish(wall + 2_000), RUNNER_UPDATES)
    assert len(cards) == 1
    assert cards[0]["card"]["last_fix_ms"] == stage.engine.runners[bib].last_t
    assert by_topic(stage.publish(wall + 4_500), RUNNER_UPDATES) == []  # nothing new


def test_an_excursion_off_the_course_between_two_rounds_is_raised(race) -> None:  # type: ignore[no-untyped-def]
    """Off and back on within one publish round (a race played fast): still raised."""
    stage = RaceStage(race, Timing(tick_ms=10**9))
    bib = race.entrants[0].bib
    lat, lon = race.course.position_at(5_000.0)
    t0 = race.start_ms + 3_600_000
    for k in range(40):  # a fix every 10 s; off the course from 100 s to 300 s
        t = t0 + k * 10_000
        off = 400.0 if 10 <= k < 30 else 5.0
        assert stage.on_journal(bib, k + 1, [["f", t, 5_000.0 + k, off, lat, lon, None, False]],
                                t0) is not None
    mine = [(a["action"], a["alert"]["kind"]) for a in by_topic(stage.publish(t0 + 400_000),
                                                                ALERTS)
            if a["alert"]["bib"] == bib and a["alert"]["kind"] == "off_course"]
    assert mine == [("raised", "off_course"), ("cleared", "off_course")]  # back on course


def test_a_copy_that_followed_another_history_is_asked_for_whole(race, fed) -> None:  # type: ignore[no-untyped-def]
    """A stale owner's entries took journal numbers the true owner uses for other
    entries (here: the copy never got some fixes): the digest after the owner's entries
    tells the copies apart, and the owner's whole state mends the copy."""
    runners, journals = fed
    bib = journals[0][1]
    mine = [j for j in journals if j[1] == bib]
    everything = [e for j in mine for e in j[3]]
    fixes = [k for k, e in enumerate(everything) if e[0] == "f"]
    lost = set(fixes[len(fixes) // 2: len(fixes) // 2 + 4])
    stage = RaceStage(race)
    wall = race.start_ms
    stage.on_journal(bib, 1, [e for k, e in enumerate(everything) if k not in lost], wall)
    last = mine[-1]
    assert stage.on_journal(bib, last[2], last[3], wall, last[4]) is not None
    assert stage.diverged == 1 and stage.sync_requests(wall) == [bib]
    state, n = runners.snapshot(race.id, bib)
    stage.on_sync(state, n, wall)
    assert stage.engine.runner_state(bib) == state and stage.sync_requests(wall + 60_000) == []


def test_a_stop_wholly_inside_one_batch_of_fixes_is_raised_and_cleared(race) -> None:  # type: ignore[no-untyped-def]
    """A tracker flushes 40 minutes at once, 12 of them standing still: the publish round
    after it carries the stop raised and cleared (the runner is moving by the last fix);
    a stop still going is raised once and stays."""
    stage = RaceStage(race, Timing(tick_ms=10**9))
    bib, other = race.entrants[0].bib, race.entrants[1].bib
    t0 = race.start_ms + 3_600_000

    def fixes(stop: range, until: int) -> list[list[Any]]:
        out, m = [], 5_000.0
        for k in range(until):
            lat, lon = race.course.position_at(m)
            out.append(["f", t0 + k * 60_000, m, 5.0, lat, lon, None, False])
            m += 0.0 if k in stop else 150.0
        return out

    stage.on_journal(bib, 1, fixes(range(10, 22), 40), t0 + 40 * 60_000)
    stage.on_journal(other, 1, fixes(range(10, 40), 40), t0 + 40 * 60_000)
    alerts = [(a["action"], a["alert"]["bib"]) for a in by_topic(
        stage.publish(t0 + 40 * 60_000), ALERTS) if a["alert"]["kind"] == "stopped"]
    assert alerts == [("raised", bib), ("cleared", bib), ("raised", other)]
    assert [a["bib"] for a in stage.engine.alerts() if a["kind"] == "stopped"] == [other]
