"""Ten thousand websocket subscriptions to distinct channels, then every client gone:
a real broadcaster (its own OS process) must give its memory back and its gauges must
come back to 0.

The race has 9,500 entrants and a standings board of 30 of them in Kafka. 500
connections hold 20 subscriptions each: ``standings`` with ``top`` 1 to 500 (one per
connection: a connection holds one subscription per channel name) and ``runner`` for
9,500 bibs, 10,000 distinct channels, which is ``--max-channels``. At the cap, a new
channel is refused with ``too_many_channels`` while a channel already served is still
served, and a 65th subscription on one connection is refused with
``too_many_subscriptions``. Then all clients close, and ``/metrics`` must show 0
connections, 0 subscriptions and (after ``--resume-s``) 0 channels. The whole cycle
runs twice.

Memory: what Python holds (its allocated blocks, after a collection) must come back
where it was, and so must VmRSS once glibc has given its free heap back
(``malloc_trim(0)``); VmRSS as it is may stay near its peak (glibc keeps freed memory
for later), but the second cycle must not grow it. The figures come from
service_probe.py (the real ``zegama-live broadcast`` plus a SIGUSR1 handler): VmRSS
alone cannot tell a leak from memory kept for later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import websockets
from broadcast_client import unbatched
from broadcast_kafka import produce, producer
from fuzz_support import (
    Findings,
    Service,
    get,
    metric,
    race_folder,
    start_broadcast,
    unique,
)

from race_engine.engine import RaceEngine
from race_engine.racefolder import load_race
from zegama_live.records.websocket import decode_frame
from zegama_live.topics import STANDINGS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BIBS = 9_500
TOPS = 500
PER_CONNECTION = 64
BOARD_ROWS = 30
MAX_CHANNELS = BIBS + TOPS  # 10,000: the default --max-channels, given explicitly
# What may stay behind once every client and channel is gone. Python's own count of
# allocated blocks: a leak of one object per subscription would be 10,000 blocks.
LEAKED_BLOCKS = 2_000  # second cycle over the first
WARM_BLOCKS = 5_000  # first cycle over the start (caches filled on first use)
KEPT_MIB = 32  # RSS after malloc_trim, over the start (after malloc_trim too)
GROWN_MIB = 16  # RSS as it is, second cycle's end over the first's
Json = dict[str, Any]


@dataclass
class Big:
    service: Service
    http: int
    ws: int
    race: str

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.ws}/"


async def _publish_board(bootstrap: str, race_id: str, board: Json, at_ms: int) -> None:
    async with producer(bootstrap) as p:
        await produce(p, [(STANDINGS, race_id, {"v": 1, "type": "snapshot", "race": race_id,
                                                "seq": 1, "generated_ms": at_ms,
                                                "board": board})])


@pytest.fixture(scope="module")
def big(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Big]:
    tmp = tmp_path_factory.mktemp("fuzz-churn")
    race = unique("fuzz-churn")
    rows = ["bib,name,sex,category,country,device,emergency_phone"]
    rows += [f"{i},Runner {i},{'FM'[i % 2]},SEN,ES,,+34 555 {i:04d}" for i in range(1, BIBS + 1)]
    folder = race_folder(tmp, race, "\n".join(rows) + "\n")
    loaded = load_race(folder)
    at_ms = loaded.start_ms + 600_000
    board = RaceEngine(loaded).board(at_ms)
    # The first rows only: a whole board of 9,500 runners is beyond Kafka's default
    # record size, and standings with top 1..500 over the whole board are 38 MB of
    # snapshots (the cost is in encoding them, not in the subscriptions).
    board["runners"] = board["runners"][:BOARD_ROWS]
    asyncio.run(_publish_board(bootstrap, race, board, at_ms))
    service, http, ws = start_broadcast(
        tmp, bootstrap, [folder], {},
        ["--resume-s", "1", "--max-channels", str(MAX_CHANNELS),
         "--slow-client-s", "60"], probe=True)
    try:
        yield Big(service, http, ws, race)
    finally:
        service.stop()


def gauges(b: Big) -> dict[str, float | None]:
    _, body = get(f"http://127.0.0.1:{b.http}/metrics")
    text = body.decode()
    return {name: metric(text, f"zegama_broadcast_{name}")
            for name in ("connections", "subscriptions", "channels")}


async def async_gauges(b: Big) -> dict[str, float | None]:
    return await asyncio.to_thread(gauges, b)


async def connect(b: Big) -> websockets.ClientConnection:
    return await websockets.connect(b.url, open_timeout=30, max_size=None, compression=None)


async def subscribe(ws: websockets.ClientConnection, channel: str, top: int | None) -> None:
    message: Json = {"op": "subscribe", "channel": channel}
    if top is not None:
        message["top"] = top
    await ws.send(orjson.dumps(message).decode())


async def answers(ws: websockets.ClientConnection, n: int, check: bool = False) -> list[Json]:
    """The next ``n`` answers to subscriptions (snapshots and errors), heartbeats skipped."""
    out: list[Json] = []
    while len(out) < n:
        raw = await asyncio.wait_for(ws.recv(), 60)
        if check:
            decode_frame(raw)
        out += [m for m in unbatched(orjson.loads(raw)) if m["type"] in ("snapshot", "error")]
    return out


def layout(race: str) -> list[list[tuple[str, int | None]]]:
    """The subscriptions of each connection: one ``standings`` with its own ``top`` (a
    connection holds one subscription per channel name: another ``top`` would replace
    it) and 19 ``runner`` channels; 500 connections, 10,000 distinct channels."""
    per = BIBS // TOPS
    return [[(f"standings:{race}", top)]
            + [(f"runner:{race}:{bib}", None) for bib in range((top - 1) * per + 1,
                                                               top * per + 1)]
            for top in range(1, TOPS + 1)]


async def open_all(b: Big, f: Findings) -> list[websockets.ClientConnection]:
    """The connections holding the 10,000 channels' subscriptions, each answered."""
    gate = asyncio.Semaphore(32)

    async def one(chunk: list[tuple[str, int | None]]) -> websockets.ClientConnection:
        async with gate:
            ws = await connect(b)
            for channel, top in chunk:
                await subscribe(ws, channel, top)
            for m in await answers(ws, len(chunk)):
                if m["type"] != "snapshot":
                    f.add("a subscription under the caps was refused", repr(m)[:300])
            return ws

    return list(await asyncio.gather(*(one(c) for c in layout(b.race))))


async def at_the_caps(b: Big, f: Findings) -> websockets.ClientConnection:
    """With 10,000 channels served: a new channel is refused (too_many_channels), one
    already served is served, and a 65th subscription on one connection is refused
    (too_many_subscriptions). Returns the connection, holding 64 subscriptions."""
    ws = await connect(b)
    for channel, top in ((f"flow:{b.race}", None), (f"standings:{b.race}", None)):
        await subscribe(ws, channel, top)
        (m,) = await answers(ws, 1, check=True)
        if not (m["type"] == "error" and m["code"] == "too_many_channels"
                and m.get("channel") == channel and len(m.get("message", "")) > 10):
            f.add("a new channel past --max-channels not refused with too_many_channels",
                  f"{channel} -> {m}"[:400])
    for bib in range(1, PER_CONNECTION + 1):  # channels already served
        await subscribe(ws, f"runner:{b.race}:{bib}", None)
    for m in await answers(ws, PER_CONNECTION, check=True):
        if m["type"] != "snapshot":
            f.add("a channel already served refused at the channel cap", repr(m)[:300])
    channel = f"runner:{b.race}:{PER_CONNECTION + 1}"
    await subscribe(ws, channel, None)
    (m,) = await answers(ws, 1, check=True)
    if not (m["type"] == "error" and m["code"] == "too_many_subscriptions"
            and m.get("channel") == channel and len(m.get("message", "")) > 10):
        f.add("a 65th subscription on a connection not refused with too_many_subscriptions",
              f"{channel} -> {m}"[:400])
    return ws


async def until_gone(b: Big, timeout_s: float = 20.0) -> dict[str, float | None]:
    """The gauges once connections and channels are 0 (or as they are at the timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        g = await async_gauges(b)
        if (g["connections"] == 0 and g["channels"] == 0) or time.monotonic() > deadline:
            return g
        await asyncio.sleep(0.25)


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


async def one_request(b: Big) -> None:
    """A ping on a new connection (every request sets the subscriptions gauge)."""
    ws = await connect(b)
    await ws.send('{"op": "ping"}')
    await ws.recv()
    await ws.close()


async def memory(b: Big) -> dict[str, int]:
    return await asyncio.to_thread(b.service.memory)


async def test_ten_thousand_subscriptions_come_and_go_without_a_trace(big: Big) -> None:
    """Two cycles of: 10,000 distinct channels subscribed over 500 connections, the caps
    checked, every client closed. After each cycle the gauges are 0, what Python holds
    (allocated blocks after a collection) is back where it was, so is RSS once the
    allocator's free memory is given back (malloc_trim), and RSS as it is does not grow
    from the first cycle to the second."""
    b, f = big, Findings("test_ten_thousand_subscriptions_come_and_go_without_a_trace")
    mark = b.service.mark()
    # Warm-up: each kind of channel once, then gone.
    ws = await connect(b)
    for channel, top in ((f"standings:{b.race}", 1), (f"standings:{b.race}", TOPS),
                         (f"runner:{b.race}:1", None)):
        await subscribe(ws, channel, top)
        await answers(ws, 1, check=True)
    await ws.close()
    await until_gone(b)
    await one_request(b)
    figures = {"start": await memory(b)}
    peaks: dict[int, int] = {}
    for cycle in (1, 2):
        t0 = time.monotonic()
        conns = await open_all(b, f)
        capped = await at_the_caps(b, f)
        opened_s = time.monotonic() - t0
        await asyncio.sleep(0.3)  # a tick: the channels gauge
        held = await async_gauges(b)
        want = {"connections": len(conns) + 1,
                "subscriptions": MAX_CHANNELS + PER_CONNECTION, "channels": MAX_CHANNELS}
        if held != want:
            f.add(f"cycle {cycle}: gauges with every subscription held",
                  f"{held}, expected {want}")
        peaks[cycle] = b.service.rss_kib()
        t0 = time.monotonic()
        await asyncio.gather(*(c.close() for c in [*conns, capped]))
        gone = await until_gone(b)
        gone_s = time.monotonic() - t0
        if gone["connections"] != 0 or gone["channels"] != 0:
            f.add(f"cycle {cycle}: connections or channels gauge not back to 0 within 20 s of "
                  "every client closing", repr(gone))
        if gone["subscriptions"] != 0:
            await one_request(b)
            after_request = (await async_gauges(b))["subscriptions"]
            f.add(f"cycle {cycle}: the subscriptions gauge stays at {gone['subscriptions']:g} "
                  "once every client has closed (connections and channels are 0)",
                  f"it reads {after_request:g} after one more request on a new connection: "
                  "it is set when a request is handled, not when a connection closes")
        figures[f"after {cycle}"] = await memory(b)
        after = figures[f"after {cycle}"]
        print(f"cycle {cycle}: {want['connections']} connections, {want['subscriptions']} "
              f"subscriptions answered in {opened_s:.1f} s, all gone in {gone_s:.1f} s; "
              f"RSS {mib(figures['start']['rss_kib'])} -> peak {mib(peaks[cycle])} -> "
              f"{mib(after['rss_kib'])}; after malloc_trim "
              f"{mib(figures['start']['trimmed_rss_kib'])} -> {mib(after['trimmed_rss_kib'])}; "
              f"Python blocks {figures['start']['blocks']} -> {after['blocks']}, "
              f"GC objects {figures['start']['objects']} -> {after['objects']}")
    start, first, second = figures["start"], figures["after 1"], figures["after 2"]
    summary = "; ".join(f"{k}: {v}" for k, v in figures.items()) + \
        f"; peaks: {', '.join(mib(v) for v in peaks.values())}"
    if second["blocks"] - first["blocks"] > LEAKED_BLOCKS:
        f.add(f"Python holds {second['blocks'] - first['blocks']} more blocks after a second "
              f"identical cycle (bound {LEAKED_BLOCKS}): something per subscription, channel "
              "or connection outlives it", summary)
    if first["blocks"] - start["blocks"] > WARM_BLOCKS:
        f.add(f"Python holds {first['blocks'] - start['blocks']} more blocks once the first "
              f"cycle's clients are gone (bound {WARM_BLOCKS})", summary)
    for name, fig in (("first", first), ("second", second)):
        kept = fig["trimmed_rss_kib"] - start["trimmed_rss_kib"]
        if kept > KEPT_MIB * 1024:
            f.add(f"RSS (after malloc_trim) {mib(kept)} above its start once the {name} "
                  f"cycle's clients are gone (bound {KEPT_MIB} MiB)", summary)
    grown = second["rss_kib"] - first["rss_kib"]
    if grown > GROWN_MIB * 1024:
        f.add(f"RSS grew {mib(grown)} from the first cycle's end to the second's "
              f"(bound {GROWN_MIB} MiB)", summary)
    status, _ = get(f"http://127.0.0.1:{b.http}/healthz")
    if status != 200:
        f.add("/healthz after the churn", str(status))
    f.check(b.service, mark)
