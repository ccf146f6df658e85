"""Chaos: a simulated race through ingest, two processor workers and two broadcasters on a
3-broker Kafka cluster, while brokers, workers, broadcasters and ingest are killed with
SIGKILL one after another (and started again), the devices retrying as trackers do.

Asserted: every fix ingest acknowledged is in ``pings.v1``; the board's splits equal the
race engine's replay over ``pings.v1``, every one to the millisecond; standings never
stalled longer than the bounds
below at any spectator; no spectator got a seq below one it held; no other service was
restarted. The figures measured are printed and written to ``var/chaos/last.json``
(docs/operations.md, docs/benchmarks.md).
Run with ``make chaos`` (``.ci/run`` runs it after ``make test``).
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from chaos_harness import (
    RecordingIngest,
    Service,
    Spectator,
    free_port,
    longest_gap,
    watch_standings,
)
from processor_harness import latest_board, read_all

from race_engine.fixes import encode_fix
from race_engine.racefolder import load_race
from race_engine.replay import final_splits, replay
from race_engine.simulate import SimOptions, simulate
from zegama_live import kafka_local
from zegama_live.demo_player import Progress, play, schedule, shifted_race
from zegama_live.kafka_local import LocalCluster
from zegama_live.records import decode_ping
from zegama_live.topics import PINGS, STANDINGS

# The cluster's start (about a minute), the race (about 5 minutes) and the checks.
pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1200)]
ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "races" / "zegama-2026"
RUNNERS = 40
SPEED = 100.0  # the field's 8 hours in under 5 minutes
INGEST_KEY, FEED_KEY = "chaos-ingest-key", "chaos-feed-key"
# Wall seconds after the race starts playing: (what, when).
PLAN = (("broker", 30.0), ("broker back", 60.0), ("worker", 90.0), ("worker back", 125.0),
        ("broadcaster", 160.0), ("broadcaster back", 175.0), ("ingest", 195.0),
        ("ingest back", 203.0))
# The longest a spectator may see the standings stand still after each fault, and the
# issue's goals for the first two: a broker lost <= 15 s, a worker lost <= 20 s.
BOUNDS_S = {"broker": 15.0, "broker back": 15.0, "worker": 20.0, "worker back": 20.0,
            "broadcaster": 10.0, "broadcaster back": 10.0, "ingest": 20.0,
            "ingest back": 20.0}


def cluster_port() -> int:
    """A port p with p..p+5 free (three brokers and their controllers)."""
    import random
    import socket

    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 32_000)
        try:
            for p in range(port, port + 6):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no six consecutive free ports")


@pytest.fixture(scope="module")
def cluster() -> Any:
    root = kafka_local.REPO / "var" / "kafka-chaos"
    for old in root.glob("c-*"):  # an interrupted run's cluster
        stale = kafka_local.cluster_in(old)
        if stale is not None:
            kafka_local.stop_cluster(stale, wait_s=5)
        shutil.rmtree(old, ignore_errors=True)
    home = root / f"c-{time.time_ns()}"
    c = LocalCluster(home=home, port=cluster_port(), brokers=3)
    print(kafka_local.start_cluster(c))
    yield c
    print(kafka_local.stop_cluster(c))
    shutil.rmtree(home, ignore_errors=True)


async def leader_of(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        await client.force_metadata_update()
        leader = client.cluster.leader_for_partition(_tp(topic))
        return int(leader)
    finally:
        await client.close()


def _tp(topic: str) -> Any:
    from aiokafka import TopicPartition

    return TopicPartition(topic, 0)


async def pings_of(bootstrap: str, race: str) -> list[Any]:
    """Every pings.v1 record of ``race`` (PingRecord), in partition order."""
    from aiokafka import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(PINGS) or \
            (await consumer._client.fetch_all_metadata()).partitions_for_topic(PINGS)
        tps = [TopicPartition(PINGS, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found = []
        prefix = f"{race}:".encode()
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                found += [decode_ping(r.value) for r in records
                          if r.key is not None and r.key.startswith(prefix)]
        return found
    finally:
        await consumer.stop()


async def test_a_race_survives_everything_killed_once(cluster: LocalCluster,
                                                      tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap
    start_ms = int(time.time()) * 1000
    source = load_race(SOURCE)
    race_id = f"zegama-chaos-{time.time_ns()}"
    folder = shifted_race(SOURCE, tmp_path, race_id, start_ms, source.timezone)
    race = load_race(folder)
    sim = simulate(source, np.random.default_rng(11),
                   SimOptions(runners=RUNNERS, interval_s=30.0, incidents=False))
    logs = tmp_path / "logs"
    logs.mkdir()
    ingest_port = free_port()
    ingest = Service("ingest", ["ingest", "--race-dir", str(folder), "--port", str(ingest_port),
                                "--osmand-port", str(free_port()), "--kafka-bootstrap",
                                bootstrap, "--max-future-s", str(48 * 3600),
                                "--host", "127.0.0.1"],
                     f"http://127.0.0.1:{ingest_port}/healthz", logs,
                     {"ZEGAMA_INGEST_KEY": INGEST_KEY})
    workers = []
    for n in (1, 2):
        port = free_port()
        workers.append(Service(f"worker{n}", [
            "process", "--races", str(folder), "--kafka-bootstrap", bootstrap,
            "--data-dir", str(tmp_path / f"process{n}"), "--app-id", f"chaos-{race_id}",
            "--web-port", str(port), "--snapshot-every-s", "2", "--loglevel", "info"],
            f"http://127.0.0.1:{port}/healthz", logs))
    broadcasters, ws_urls = [], []
    for n in (1, 2):
        http, ws = free_port(), free_port()
        broadcasters.append(Service(f"broadcaster{n}", [
            "broadcast", "--race", str(folder), "--bootstrap", bootstrap, "--host",
            "127.0.0.1", "--http-port", str(http), "--ws-port", str(ws)],
            f"http://127.0.0.1:{http}/healthz", logs, {"ZEGAMA_FEED_KEYS": f"chaos:{FEED_KEY}"}))
        ws_urls.append(f"ws://127.0.0.1:{ws}/")
    services = [ingest, *workers, *broadcasters]
    spectators = [Spectator(ws_urls, race.id, first=i) for i in range(4)]
    tasks: list[asyncio.Task[None]] = []
    report: dict[str, Any] = {}
    try:
        for s in services:
            s.start()
        for s in services:
            await s.ready()
        published: list[float] = []  # standings.v1 records of the race, as they arrive
        tasks = [asyncio.create_task(sp.run()) for sp in spectators]
        tasks.append(asyncio.create_task(watch_standings(bootstrap, race.id, published)))
        sender = RecordingIngest(f"http://127.0.0.1:{ingest_port}", INGEST_KEY)
        progress = Progress()
        items = list(schedule(sim.pings(), source, start_ms, SPEED))
        began = time.monotonic()
        playing = asyncio.get_running_loop().run_in_executor(
            None, lambda: [None for _ in play(items, sender, progress)])
        pids = {s.name: s.pid for s in services}
        faults: dict[str, float] = {}
        victim: dict[str, Any] = {}
        for what, at in PLAN:
            await asyncio.sleep(max(0.0, began + at - time.monotonic()))
            faults[what] = time.monotonic()
            if what == "broker":
                victim["broker"] = await leader_of(bootstrap, STANDINGS)
                await asyncio.to_thread(kafka_local.kill_node, cluster, victim["broker"])
            elif what == "broker back":
                report["broker_restart_s"] = round(await asyncio.to_thread(
                    kafka_local.start_node, cluster, victim["broker"]), 1)
            elif what == "worker":
                workers[0].kill()
            elif what == "worker back":
                workers[0].start()
                report["worker_ready_s"] = round(await workers[0].ready(), 1)
            elif what == "broadcaster":
                broadcasters[0].kill()
            elif what == "broadcaster back":
                broadcasters[0].start()
                report["broadcaster_ready_s"] = round(await broadcasters[0].ready(), 1)
            elif what == "ingest":
                ingest.kill()
            elif what == "ingest back":
                ingest.start()
                report["ingest_ready_s"] = round(await ingest.ready(), 1)
        await playing
        sender.close()
        played_s = time.monotonic() - began

        # Every fix ingest acknowledged is in pings.v1, and the board equals the replay.
        pings = await pings_of(bootstrap, race.id)
        stored = {(p.fix.device, p.fix.t) for p in pings}
        lost = sender.acked - stored
        assert not lost, f"{len(lost)} acknowledged fixes are not in pings.v1: {sorted(lost)[:5]}"
        assert len(sender.acked) == len(items), (len(sender.acked), len(items), progress)
        lines = [orjson.dumps(encode_fix(p.fix)) for p in pings]
        expected = replay(race, lines).splits
        assert len(expected) > RUNNERS * 5
        got: list[Any] = []
        reads: list[list[Any]] = []

        async def settled() -> bool:
            # Every split on the board, and the board holding still over three reads.
            board = latest_board(await read_all(bootstrap, STANDINGS), race.id)
            got[:] = [] if board is None else final_splits(board)
            reads.append(list(got))
            return got == expected or (len(got) >= len(expected) and len(reads) >= 3
                                       and reads[-1] == reads[-2] == reads[-3])

        deadline = time.monotonic() + 90
        while not await settled():
            for s in services:
                assert s.alive(), f"{s.name} exited: {s.tail()}"
            assert time.monotonic() < deadline, _diff(got, expected)
            await asyncio.sleep(2)
        differ = _differences(got, expected)
        report["split_differences"] = differ
        if differ:  # kept for whoever looks into it: the fixes and the two boards
            out = ROOT / "var" / "chaos"
            out.mkdir(parents=True, exist_ok=True)
            (out / "pings.jsonl").write_bytes(b"\n".join(lines) + b"\n")
            (out / "splits.json").write_bytes(orjson.dumps({"live": got, "replay": expected}))
        # Standings never stalled longer than the bounds; seq never went backwards.
        ends = [*(faults[w] for w, _ in PLAN[1:]), began + played_s]
        stalls, kafka_stalls = {}, {}
        for (what, _), end in zip(PLAN, ends, strict=True):
            stalls[what] = round(max(longest_gap(sp.arrivals, faults[what], end)
                                     for sp in spectators), 1)
            kafka_stalls[what] = round(longest_gap(published, faults[what], end), 1)
        report.update(stalls=stalls, standings_v1_stalls=kafka_stalls, fixes=len(items),
                      stored=len(pings),
                      duplicates=len(pings) - len(stored),
                      answers={str(k): v for k, v in sorted(sender.answers.items())},
                      spectator_reconnects=[sp.reconnects for sp in spectators],
                      ahead=[sp.ahead for sp in spectators], played_s=round(played_s, 1),
                      killed_broker=victim["broker"])
        report["faults_at_s"] = {w: round(faults[w] - began, 1) for w, _ in PLAN}
        report["gaps"] = [[(round(a - began, 1), round(b - a, 1))
                           for a, b in itertools.pairwise(times) if b - a > 3.0]
                          for times in (published, *(sp.arrivals for sp in spectators))]
        print("chaos figures:", orjson.dumps(report).decode())
        (ROOT / "var" / "chaos").mkdir(parents=True, exist_ok=True)
        (ROOT / "var" / "chaos" / "last.json").write_bytes(orjson.dumps(report))
        # The board's splits are the replay's, to the millisecond (the differences, if
        # any, are in the figures and the data kept in var/chaos/).
        assert got == expected, _diff(got, expected)

        assert all(not sp.backwards for sp in spectators), [sp.backwards for sp in spectators]
        over = {w: s for w, s in stalls.items() if s > BOUNDS_S[w]}
        assert not over, f"standings stalled longer than the bounds: {over} ({report})"
        # Nothing restarted but the one killed each time.
        for s in services:
            assert s.alive(), f"{s.name} exited: {s.tail()}"
        restarted = {"worker1", "broadcaster1", "ingest"}
        assert {s.name for s in services if s.pid != pids[s.name]} == restarted
    finally:
        for t in tasks:
            t.cancel()
        for s in services:
            s.stop()
        out = ROOT / "var" / "chaos"
        out.mkdir(parents=True, exist_ok=True)
        (out / "last.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


def _differences(got: list[Any], expected: list[Any]) -> list[dict[str, Any]]:
    """The splits whose time differs between the live board and the replay."""
    e = {(r["bib"], r["checkpoint"]): r for r in expected}
    return [{"bib": r["bib"], "checkpoint": r["checkpoint"], "live_t": r["t"],
             "replay_t": e[(r["bib"], r["checkpoint"])]["t"]}
            for r in got if (r["bib"], r["checkpoint"]) in e
            and r["t"] != e[(r["bib"], r["checkpoint"])]["t"]]


def _diff(got: list[Any], expected: list[Any]) -> str:
    g = {(r["bib"], r["checkpoint"]): r for r in got}
    e = {(r["bib"], r["checkpoint"]): r for r in expected}
    missing = sorted(set(e) - set(g))[:5]
    extra = sorted(set(g) - set(e))[:5]
    differ = [(k, g[k], e[k]) for k in sorted(set(g) & set(e)) if g[k] != e[k]][:5]
    return (f"board has {len(got)} splits, replay {len(expected)}: missing {missing}, "
            f"extra {extra}, different {differ}")
