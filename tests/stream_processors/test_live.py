"""The live processors against the real broker: same splits as replay, crash recovery,
scale-out, control commands."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from processor_harness import (
    Worker,
    latest_board,
    produce,
    read_all,
    sim_pings,
    wait_for,
)

from race_engine.racefolder import load_race
from race_engine.replay import final_splits, replay
from zegama_live.topics import ALERTS, CONTROL, CONTROL_LOG, PINGS, STANDINGS

pytestmark = pytest.mark.integration
RACE_DIR = Path(__file__).resolve().parents[2] / "races" / "zegama-2026"
RUNNERS = 12


@pytest.fixture(scope="module")
def race():  # type: ignore[no-untyped-def]
    return load_race(RACE_DIR)


@pytest.fixture(scope="module")
def pings(race):  # type: ignore[no-untyped-def]
    return sim_pings(race, RUNNERS)


@pytest.fixture(scope="module")
def expected(race, pings) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return replay(race, [line for _, _, line in pings]).splits


def app_id(name: str) -> str:
    return f"test-{name}-{time.time_ns()}"


async def live_splits(bootstrap: str, race_id: str, want: int) -> list[dict[str, Any]]:
    """Wait until the published board has ``want`` splits and holds still over three
    reads a second apart (several publish rounds and a table flush), return them."""
    last: list[list[dict[str, Any]]] = []

    async def settled() -> list[dict[str, Any]] | None:
        board = latest_board(await read_all(bootstrap, STANDINGS), race_id)
        splits = [] if board is None else final_splits(board)
        done = len(splits) >= want and len(last) >= 2 and splits == last[-1] == last[-2]
        last.append(splits)
        return splits if done else None

    return await wait_for(settled, 240, f"{want} splits on standings.v1")


async def test_live_splits_equal_replay(kafka_bootstrap, race, pings, expected, tmp_path):  # type: ignore[no-untyped-def]
    worker = Worker(kafka_bootstrap, str(RACE_DIR), tmp_path / "w1", app_id("replay"),
                    tmp_path / "w1.log").start()
    # A record with a wrong-typed field first: refused, counted, and the worker goes on.
    bad = orjson.loads(pings[0][1])
    bad["t"] = "soon"
    try:
        await produce(kafka_bootstrap, PINGS, [(pings[0][0], orjson.dumps(bad))])
        await produce(kafka_bootstrap, PINGS, [(k, v) for k, v, _ in pings])
        got = await live_splits(kafka_bootstrap, race.id, len(expected))
        torn = await metric(worker, "zegama_process_torn_summaries")
        refused = await metric(worker, 'zegama_process_rejected_total{reason="RecordError",'
                                       'topic="pings.v1"')
    finally:
        worker.stop()
    assert len(expected) > RUNNERS * 5
    assert got == expected, worker.events()
    assert refused == 1
    # Every summary's curve fitted the per-race stage's copy: nothing was lost between.
    assert torn == 0, worker.events()


async def metric(worker: Worker, name: str) -> float:
    """The sum of a metric's samples on a worker's /metrics (0 when not up yet)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((name + "{", name + " ")) or
               ("{" in name and line.startswith(name)))


async def test_a_killed_worker_recovers_and_ends_with_the_same_splits(  # type: ignore[no-untyped-def]
        kafka_bootstrap, race, pings, expected, tmp_path):
    name = app_id("crash")
    half = len(pings) // 2
    w = Worker(kafka_bootstrap, str(RACE_DIR), tmp_path / "w", name, tmp_path / "w.log").start()
    try:
        await produce(kafka_bootstrap, PINGS, [(k, v) for k, v, _ in pings[:half]])

        async def midway() -> bool:
            return await metric(w, "zegama_process_events_total") >= half

        await wait_for(midway, 90, "the worker to process the first half")
        w.kill()  # kill -9 in the middle of the race
        await produce(kafka_bootstrap, PINGS, [(k, v) for k, v, _ in pings[half:]])
        w.start()
        got = await live_splits(kafka_bootstrap, race.id, len(expected))
    finally:
        w.stop()
    assert got == expected, w.events()


async def test_a_worker_joining_mid_race_takes_half_and_the_splits_stay_right(  # type: ignore[no-untyped-def]
        kafka_bootstrap, race, pings, expected, tmp_path):
    """Scale-out on race day: a second worker joins while the first is busy, the
    partitions are shared out in the middle of the stream, both finish the race."""
    name = app_id("scale")
    workers = [Worker(kafka_bootstrap, str(RACE_DIR), tmp_path / f"w{i}", name,
                      tmp_path / f"w{i}.log") for i in (1, 2)]
    half, late = len(pings) // 2, len(pings) * 3 // 4
    try:
        workers[0].start()
        await produce(kafka_bootstrap, PINGS, [(k, v) for k, v, _ in pings[:half]])

        async def started() -> bool:
            return await metric(workers[0], "zegama_process_events_total") > 0

        await wait_for(started, 120, "the first worker to process pings")
        workers[1].start()
        for at in range(half, late, 200):  # keeps coming while the group rebalances
            await produce(kafka_bootstrap, PINGS, [(k, v) for k, v, _ in pings[at:at + 200]])
            await asyncio.sleep(0.3)

        async def both_joined() -> bool:
            health = [await _get(w, "/healthz") for w in workers]
            parts = [orjson.loads(h)["pings_partitions"] if h else [] for h in health]
            return sorted(p for ps in parts for p in ps) == list(range(6)) and all(parts)

        await wait_for(both_joined, 180, "both workers to share the 6 partitions")
        # The web port serves health and metrics, not Faust's views of the tables.
        assert [_status(workers[0], path) for path in ("/healthz", "/metrics")] == [200, 200]
        assert [_status(workers[0], path) for path in
                ("/table/runners/", "/table/race-summaries/", "/router/runners/",
                 "/graph/", "/stats/", "/performance/")] == [404] * 6
        await produce(kafka_bootstrap, PINGS, [(k, v) for k, v, _ in pings[late:]])
        got = await live_splits(kafka_bootstrap, race.id, len(expected))
        shares = [await metric(w, 'zegama_process_events_total{topic="pings.v1"')
                  for w in workers]
    finally:
        for w in workers:
            w.stop()
    assert got == expected, "\n".join(f"worker {n}:\n{w.events()}"
                                      for n, w in enumerate(workers, 1))
    assert all(share > 0 for share in shares), f"pings processed per worker: {shares}"


def _status(worker: Worker, path: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}{path}", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def _get(worker: Worker, path: str) -> bytes | None:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}{path}", timeout=2) as r:
            return bytes(r.read())
    except OSError:
        return None


async def test_control_commands_change_what_is_published_and_survive_a_restart(  # type: ignore[no-untyped-def]
        kafka_bootstrap, race, pings, expected, tmp_path):
    name = app_id("control")
    started_ms = time.time_ns() // 1_000_000
    w = Worker(kafka_bootstrap, str(RACE_DIR), tmp_path / "w", name, tmp_path / "w.log").start()
    try:
        await produce(kafka_bootstrap, PINGS, [(k, v) for k, v, _ in pings])
        await live_splits(kafka_bootstrap, race.id, len(expected))
        # An alert this worker raised (seq follows the wall clock; other tests published
        # boards and alerts of the same race) and that stays open: a "no signal" of an
        # entrant whose tracker never sent anything.
        silent = {e.bib for e in race.entrants} - {e["bib"] for e in expected}

        async def own_open_alert() -> str | None:
            alerts = {a["alert"]["id"]: a for a in await read_all(kafka_bootstrap, ALERTS)
                      if a["race"] == race.id and a["seq"] > started_ms * 1000}
            return next((i for i, a in alerts.items() if a["action"] == "raised"
                         and a["alert"]["kind"] == "no_fix" and a["alert"]["bib"] in silent),
                        None)

        open_id = await wait_for(own_open_alert, 120, "an open alert this worker raised")
        bib = expected[0]["bib"]
        stamp = {"by": "control:test", "at_ms": 1, "race": race.id}
        await produce(kafka_bootstrap, CONTROL, [
            (race.id.encode(), orjson.dumps({**stamp, "id": f"{name}-1", "op": "dnf",
                                              "bib": bib, "reason": "hypothermia"})),
            (race.id.encode(), orjson.dumps({**stamp, "id": f"{name}-2", "op": "ack",
                                              "alert_id": open_id})),
        ])

        async def dnf_on_board() -> bool:
            board = latest_board(await read_all(kafka_bootstrap, STANDINGS), race.id)
            row = next(r for r in (board or {"runners": []})["runners"] if r["bib"] == bib)
            return row["status"] == "dnf" and row["rank"] is None

        await wait_for(dnf_on_board, 120, f"bib {bib} to leave the ranking")
        w.kill()
        w.start()

        async def audited() -> list[dict[str, Any]]:
            log = [e for e in await read_all(kafka_bootstrap, CONTROL_LOG)
                   if str(e["id"]).startswith(name)]
            return log if len(log) == 2 else []

        log = await wait_for(audited, 120, "both commands in the audit log")
        await asyncio.sleep(5)  # the restarted worker has published its first rounds
    finally:
        w.stop()
    # Runner commands take the per-runner path, race commands go straight to the race:
    # each path keeps its order, the two may interleave (docs/processors.md).
    assert sorted((e["op"], e["result"], e["by"]) for e in log) == [
        ("ack", "applied", "control:test"), ("dnf", "applied", "control:test")]
    latest = [a for a in await read_all(kafka_bootstrap, ALERTS) if a["alert"]["id"] == open_id]
    assert latest[-1]["alert"]["acknowledged"] is True, latest[-1]


async def test_two_races_at_once_spread_over_two_workers(  # type: ignore[no-untyped-def]
        kafka_bootstrap, race, pings, expected, tmp_path):
    """A second race (the example loop, renamed so its board falls on another partition
    of the per-race topic) beside Zegama, on two workers: each race's board is made by
    exactly one worker, and both races' splits equal replay's."""
    other_dir = tmp_path / "keswick-2026"
    shutil.copytree(RACE_DIR.parent / "example-loop", other_dir)
    other = load_race(other_dir)
    other_pings = sim_pings(other, 10, seed=3)
    other_expected = replay(other, [line for _, _, line in other_pings]).splits
    name = app_id("races")
    folders = f"{RACE_DIR},{other_dir}"
    workers = [Worker(kafka_bootstrap, folders, tmp_path / f"w{i}", name,
                      tmp_path / f"w{i}.log").start() for i in (1, 2)]
    try:
        async def both_joined() -> list[list[str]] | None:
            health = [await _get(w, "/healthz") for w in workers]
            if not all(health):
                return None
            info = [orjson.loads(h) for h in health if h]
            parts = sorted(p for i in info for p in i["pings_partitions"])
            return [i["owns_races"] for i in info] if parts == list(range(6)) and all(
                i["pings_partitions"] for i in info) else None

        await wait_for(both_joined, 180, "both workers to share the partitions")
        await produce(kafka_bootstrap, PINGS, [(k, v) for k, v, _ in pings + other_pings])
        got = await live_splits(kafka_bootstrap, race.id, len(expected))
        got_other = await live_splits(kafka_bootstrap, other.id, len(other_expected))
        owners = await wait_for(both_joined, 60, "the workers' health")
    finally:
        for w in workers:
            w.stop()
    events = "\n".join(f"worker {n}:\n{w.events()}" for n, w in enumerate(workers, 1))
    assert got == expected, events
    assert got_other == other_expected and len(other_expected) > 10, events
    # Each race's board is made by exactly one worker (where the races' partitions of
    # the per-race topic landed decides whether that is the same worker).
    assert sorted(r for o in owners for r in o) == sorted([race.id, other.id]), owners
