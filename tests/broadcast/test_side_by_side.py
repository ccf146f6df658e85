"""Two broadcaster processes side by side behind one (imagined) load balancer: the same
records give the same frames on both, so a client that leaves one resumes on the other
with ``since`` and no snapshot, and one shutting down closes its clients with 1001 and
a reason that says how to resume (docs/broadcast.md, docs/websocket.md)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import websockets
from broadcast_client import ClientChannel, without_clock
from broadcast_kafka import produce, producer, receive, send, unique_race
from broadcast_records import RaceRecords
from processor_harness import free_port, wait_for

from broadcast.compact import compact
from broadcast.connections import GOING_AWAY
from zegama_live.service import stop_child
from zegama_live.topics import STANDINGS

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


class BroadcasterProcess:
    """``zegama-live broadcast`` as a child process on free ports."""

    def __init__(self, bootstrap: str, race_dir: Path, log: Path) -> None:
        self.http, self.ws = free_port(), free_port()
        self.url = f"ws://127.0.0.1:{self.ws}/"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "zegama_live.cli", "broadcast", "--race", str(race_dir),
                 "--bootstrap", bootstrap, "--http-port", str(self.http),
                 "--ws-port", str(self.ws), "--tick-ms", "50"],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})

    async def rebuilt(self) -> bool:
        """True once /healthz says the views are rebuilt from Kafka."""
        with contextlib.suppress(aiohttp.ClientError):
            async with aiohttp.ClientSession() as s, \
                    s.get(f"http://127.0.0.1:{self.http}/healthz") as r:
                return r.status == 200 and (await r.json())["status"] == "ok"
        return False


@contextlib.contextmanager
def two_broadcasters(bootstrap: str, race_dir: Path, tmp: Path) -> Iterator[
        tuple[BroadcasterProcess, BroadcasterProcess]]:
    pair = (BroadcasterProcess(bootstrap, race_dir, tmp / "a.log"),
            BroadcasterProcess(bootstrap, race_dir, tmp / "b.log"))
    try:
        yield pair
    finally:
        for b in pair:
            stop_child(b.proc, grace_s=10)


def standings_seq(records: list) -> int:  # type: ignore[type-arg]
    return max(r["seq"] for t, _, r in records if t == STANDINGS)


async def follow(ws: websockets.ClientConnection, held: ClientChannel, seq: int) -> list[str]:
    """Apply frames until ``held`` is at ``seq``; the types of the frames applied."""
    types = []
    while held.seq < seq:
        frame = await receive(ws)
        types.append(frame["type"])
        held.apply(frame)
    return types


async def test_a_client_resumes_on_another_broadcaster_and_is_told_to_on_shutdown(  # type: ignore[no-untyped-def]
        kafka_bootstrap, tmp_path) -> None:
    rr = RaceRecords(unique_race(tmp_path), snapshot_every=1000)
    ticks = rr.run()
    name = f"standings:{rr.race.id}"
    async with producer(kafka_bootstrap) as p:
        await produce(p, [rec for _ in range(5) for rec in next(ticks)])
        with two_broadcasters(kafka_bootstrap, rr.race_dir, tmp_path) as (a, b):
            for one in (a, b):
                await wait_for(one.rebuilt, 60, "a broadcaster rebuilt from Kafka", 0.2)
            async with websockets.connect(b.url) as keeper:  # B serves the channel already
                await send(keeper, {"op": "subscribe", "channel": name})
                on_b = ClientChannel(name)
                on_b.apply(await receive(keeper))
                held = ClientChannel(name)
                async with websockets.connect(a.url) as ws:
                    await send(ws, {"op": "subscribe", "channel": name})
                    held.apply(await receive(ws))
                    for _ in range(3):  # ticks apart: A and B see different batches
                        records = next(ticks)
                        await produce(p, records)
                        await asyncio.sleep(0.03)
                    assert set(await follow(ws, held, standings_seq(records))) == {"update"}
                missed = [rec for _ in range(6) for rec in next(ticks)]
                await produce(p, missed)
                await follow(keeper, on_b, standings_seq(missed))
                async with websockets.connect(b.url) as ws:  # the load balancer's other one
                    await send(ws, {"op": "subscribe", "channel": name, "since": held.seq})
                    types = await follow(ws, held, standings_seq(missed))
                    assert set(types) == {"update"}, types  # resumed, no snapshot
                    assert without_clock(held.state) == without_clock(compact(rr.board))
                    assert held.state == on_b.state  # the same frames as B's own client
                    stop_child(b.proc, grace_s=10)  # B shuts down: SIGTERM
                    with pytest.raises(websockets.ConnectionClosed) as closed:
                        async with asyncio.timeout(10):
                            while True:
                                await receive(ws)
            rcvd = closed.value.rcvd
            assert rcvd is not None and rcvd.code == GOING_AWAY and "since" in rcvd.reason
            more = [rec for _ in range(3) for rec in next(ticks)]
            await produce(p, more)
            async with websockets.connect(a.url) as ws:  # and back to A, from B's last seq
                await send(ws, {"op": "subscribe", "channel": name, "since": held.seq})
                assert set(await follow(ws, held, standings_seq(more))) == {"update"}
                await send(ws, {"op": "subscribe", "channel": name})
                fresh = await receive(ws)
                assert fresh["type"] == "snapshot"
                assert without_clock(held.state) == without_clock(fresh["data"])
                assert held.seq == fresh["seq"]
