"""The swarm against a tiny ``websockets`` server that sends timestamped standings frames.

The server runs in a thread of the test process; the swarm's workers are real processes.
Every client gets a snapshot on subscribing, then an update every 100 ms whose
``generated_ms`` is 40 ms in the past and whose one row carries a new ``last_fix_ms``
60 ms in the past; client connections number 7 (mod 10) are closed with 4008 after 1 s.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import socket
import threading
import time
from collections.abc import Iterator

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from loadtest import swarm_wire as wire
from loadtest.swarm import SwarmError, run_swarm
from loadtest.swarm_ceiling import ceiling_main
from loadtest.swarm_feed import Stamper, StandingsFeed
from loadtest.swarm_histogram import Histogram

TICK_LAG_MS = 40
FIX_LAG_MS = 60


class TinyServer:
    def __init__(self) -> None:
        self.port = 0
        self.subscribes: list[dict[str, object]] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.accepted = 0

    async def handler(self, ws: ServerConnection) -> None:
        self.accepted += 1
        number = self.accepted
        msg = json.loads(await ws.recv())
        self.subscribes.append(msg)
        now = int(time.time() * 1000)
        board = {"v": 1, "race": "r", "generated_ms": now - TICK_LAG_MS, "runners": [
            {"bib": "1", "last_fix_ms": now - 5000}]}
        await ws.send(orjson.dumps({"type": "snapshot", "channel": msg["channel"], "seq": 1,
                                    "data": board}).decode())
        started = time.monotonic()
        seq = 1
        while not self.stop.is_set():
            await asyncio.sleep(0.1)
            if number % 10 == 7 and time.monotonic() - started > 1.0:
                await ws.close(4008, "too slow")
                return
            now = int(time.time() * 1000)
            seq += 1
            data = {"race": "r", "seq": seq, "base_seq": seq - 1,
                    "generated_ms": now - TICK_LAG_MS, "order": ["1"],
                    "rows": [{"bib": "1", "last_fix_ms": now - FIX_LAG_MS}]}
            await ws.send(orjson.dumps({"type": "update", "channel": msg["channel"],
                                        "seq": seq, "data": data}).decode())

    async def main(self) -> None:
        async with serve(self.handler, "127.0.0.1", 0, compression=None) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self.ready.set()
            while not self.stop.is_set():
                await asyncio.sleep(0.05)


@pytest.fixture
def server() -> Iterator[TinyServer]:
    s = TinyServer()
    thread = threading.Thread(target=asyncio.run, args=(s.main(),), daemon=True)
    thread.start()
    assert s.ready.wait(5.0)
    yield s
    s.stop.set()
    thread.join(5.0)


def test_swarm_counts_frames_latency_and_disconnects(server: TinyServer) -> None:
    seen = []
    result = run_swarm(f"ws://127.0.0.1:{server.port}/", "standings:r", clients=50,
                       processes=2, duration_s=3, top=5, parse_every=5, on_second=seen.append)
    total = result.total
    assert result.failures == []
    assert [s.second for s in seen] == [0, 1, 2]
    assert total.connects == 50 and total.connect_failures == {}
    assert total.connect.n == 50
    assert len(server.subscribes) == 50
    assert all(m == {"op": "subscribe", "channel": "standings:r", "top": 5}
               for m in server.subscribes)
    assert total.snapshots == 50
    # 45 clients for ~2.5 s at 10 updates/s, 5 clients closed after ~1 s.
    assert 45 * 15 < total.updates < 50 * 30
    assert total.disconnects == {4008: 5}
    assert seen[-1].tally.open == 45
    assert total.tick.n == total.updates
    assert TICK_LAG_MS - 5 < total.tick.percentile(0.5) < TICK_LAG_MS + 100
    # 10 parsing clients (ids 0, 5, ...): one changed row per update after the snapshot.
    assert total.e2e.n > 10 * 10
    assert FIX_LAG_MS - 5 < total.e2e.percentile(0.5) < FIX_LAG_MS + 100
    assert total.bytes > total.frames * 60


def test_swarm_refuses_another_machine_and_too_many_clients() -> None:
    with pytest.raises(SwarmError, match="only connects to this machine"):
        run_swarm("ws://192.0.2.1:8765/", clients=1)
    with pytest.raises(SwarmError, match="clients must be"):
        run_swarm("ws://127.0.0.1:8765/", clients=20_001)


def test_swarm_counts_refused_connections() -> None:
    result = run_swarm("ws://127.0.0.1:9/", "standings:r", clients=3, processes=1,
                       duration_s=1)
    assert result.total.connects == 0
    assert sum(result.total.connect_failures.values()) == 3


def test_frame_parser_joins_split_and_fragmented_frames() -> None:
    parser = wire.FrameParser()
    big = b"x" * 70_000
    data = (wire.frame(wire.OP_TEXT, big) + wire.header(wire.OP_TEXT, 3, fin=False) + b"abc"
            + wire.header(wire.OP_CONT, 2) + b"de" + wire.frame(wire.OP_PING, b"p"))
    out = []
    for i in range(0, len(data), 1000):
        out += parser.feed(data[i:i + 1000])
    assert out == [(wire.OP_TEXT, big), (wire.OP_TEXT, b"abcde"), (wire.OP_PING, b"p")]
    masked = wire.client_frame(wire.OP_TEXT, b"hello")
    assert wire.FrameParser().feed(masked) == [(wire.OP_TEXT, b"hello")]


def test_histogram_percentiles_within_one_percent() -> None:
    h = Histogram()
    for v in range(1, 1001):
        h.add(float(v))
    h.add(-3.0)
    assert h.negative == 1
    assert abs(h.percentile(0.5) - 500) / 500 < 0.01
    assert abs(h.percentile(0.99) - 990) / 990 < 0.01
    assert h.max_ms == 1000.0


def tiny_feed() -> StandingsFeed:
    rows = [{"bib": "1", "last_fix_ms": 100}, {"bib": "2", "last_fix_ms": 200}]
    board = {"v": 1, "race": "r", "generated_ms": 0, "runners": rows, "checkpoints": []}
    snapshot = {"v": 1, "type": "snapshot", "race": "r", "seq": 0, "generated_ms": 0,
                "board": board}
    updates = [{"v": 1, "type": "update", "race": "r", "seq": 0, "base_seq": 0,
                "generated_ms": 0, "order": ["1", "2"], "checkpoints": [], "rows": r}
               for r in ([{"bib": "1", "last_fix_ms": 150}],
                         [{"bib": "1", "last_fix_ms": 150}, {"bib": "2", "last_fix_ms": 200}])]
    return StandingsFeed("r", snapshot, updates, [frozenset({"1"}), frozenset()])


def test_stamper_restamps_only_new_fixes_and_chains_seq() -> None:
    stamper = Stamper(tiny_feed(), seq=10)
    snap = stamper.snapshot(1_000)
    first, second, wrapped = stamper.update(2_000), stamper.update(3_000), stamper.update(4_000)
    assert (snap["seq"], snap["board"]["generated_ms"]) == (11, 1_000)
    assert (first["seq"], first["base_seq"], first["generated_ms"]) == (12, 11, 2_000)
    assert first["rows"] == [{"bib": "1", "last_fix_ms": 2_000}]
    # Bib 1 had no new fix in the second update: it keeps the time last sent.
    assert second["rows"] == [{"bib": "1", "last_fix_ms": 2_000}, {"bib": "2", "last_fix_ms": 200}]
    assert (second["seq"], second["base_seq"]) == (13, 12)
    assert wrapped["rows"] == [{"bib": "1", "last_fix_ms": 4_000}]


def test_swarm_against_the_ceiling_server() -> None:
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = ctx.Process(target=ceiling_main, args=(tiny_feed(), "standings:r", 10.0, port, 8.0,
                                                  ready), daemon=True)
    proc.start()
    try:
        assert ready.wait(10)
        result = run_swarm(f"ws://127.0.0.1:{port}/", "standings:r", clients=20, processes=1,
                           duration_s=3, parse_every=1)
    finally:
        proc.terminate()
        proc.join(5)
    total = result.total
    assert total.connects == 20 and total.snapshots == 20
    assert 20 * 10 * 1.5 < total.updates <= 20 * 10 * 3
    assert total.tick.n == total.updates and total.tick.percentile(0.99) < 1_000
    # Bib 1 gets a new fix every other update; nothing else ever changes.
    assert 0.3 * total.updates < total.e2e.n < 0.7 * total.updates
    assert total.e2e.max_ms < 1_000


def test_the_swarm_finds_each_message_of_a_batch_without_parsing_it() -> None:
    import orjson

    from broadcast.wire import message
    from loadtest.swarm_client import _starts

    frames = [orjson.dumps({"type": "update", "channel": "standings:r", "seq": i,
                            "data": {"generated_ms": 1000 + i, "rows": [{"bib": "1"}]}})
              for i in range(3)] + [orjson.dumps({"type": "heartbeat", "t_ms": 5})]
    batch = message(frames)
    assert [batch[s:s + len(f)] for s, f in zip(_starts(batch), frames, strict=True)] == frames
