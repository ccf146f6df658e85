"""Kafka goes away mid-race: the processor and the broadcaster say so on /healthz, the
feed and the heartbeats call the board stale, and all of it clears when Kafka is back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import websockets
from processor_harness import Worker, produce, sim_pings, wait_for

from broadcast.app import Broadcaster
from broadcast.settings import BroadcastSettings
from race_engine.racefolder import load_race
from zegama_live.service import stop_child
from zegama_live.topics import PINGS

pytestmark = pytest.mark.integration
RACE_DIR = Path(__file__).resolve().parents[2] / "races" / "zegama-2026"
FEED_KEY = "outage-feed-key"
STALE_AFTER_S = 4.0


async def get(url: str, key: str | None = None) -> tuple[int, Any]:
    headers = {"X-API-Key": key} if key else {}
    try:
        async with aiohttp.ClientSession() as http, \
                http.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=3)) as resp:
            return resp.status, await resp.json()
    except (aiohttp.ClientError, TimeoutError):
        return 0, None


async def test_health_and_staleness_through_a_broker_outage(kafka_broker: Any,
                                                            tmp_path: Path) -> None:
    if not await asyncio.to_thread(kafka_broker.answers):
        await asyncio.to_thread(kafka_broker.start)
    bootstrap = kafka_broker.bootstrap
    race = load_race(RACE_DIR)
    pings = sim_pings(race, 4)
    worker = Worker(bootstrap, str(RACE_DIR), tmp_path / "w", f"test-outage-{time.time_ns()}",
                    tmp_path / "w.log").start()
    settings = BroadcastSettings(bootstrap=bootstrap, races=(RACE_DIR,), http_port=0,
                                 ws_port=0, heartbeat_s=0.5, stale_after_s=STALE_AFTER_S,
                                 feed_keys=(("media", FEED_KEY),))
    b = Broadcaster(settings)
    stopped = False
    worker_health = f"http://127.0.0.1:{worker.port}/healthz"
    try:
        await produce(bootstrap, PINGS, [(k, v) for k, v, _ in pings[:200]])
        await b.start(wait_caught_up_s=60)
        base = f"http://127.0.0.1:{b.http_port}"
        standings = f"{base}/feed/v1/races/{race.id}/standings"

        async def fresh() -> bool:
            w, b_ = await get(worker_health), await get(f"{base}/healthz")
            feed = await get(standings, FEED_KEY)
            return (w[0], b_[0], feed[0]) == (200, 200, 200) and feed[1]["stale"] is False \
                and b_[1]["kafka"] == "up" and w[1]["kafka"] == "up"

        await wait_for(fresh, 90, "both services healthy and the board fresh", 0.5)
        (status, health) = await get(worker_health)
        assert health["newest_input_age_s"] is not None
        async with websockets.connect(f"ws://127.0.0.1:{b.ws_port}/") as ws:
            await asyncio.to_thread(kafka_broker.stop)
            lost = time.monotonic()

            async def says_down(url: str) -> bool:
                status, body = await get(url)
                return status == 503 and body["status"] == "kafka_unreachable" \
                    and body["kafka"] == "down" and "kafka_error" in body

            await wait_for(lambda: says_down(worker_health), 15, "the worker's 503", 0.3)
            await wait_for(lambda: says_down(f"{base}/healthz"), 15, "the broadcaster's 503",
                           0.3)
            noticed = time.monotonic() - lost

            async def stale_beat() -> bool:
                msg = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
                return msg["type"] == "heartbeat" and race.id in msg.get("stale", {})

            await wait_for(stale_beat, STALE_AFTER_S + 10, "a heartbeat naming the race", 0)
            status, body = await get(standings, FEED_KEY)
            assert status == 200 and body["stale"] is True and body["board"] is not None
            assert race.id in (await get(f"{base}/healthz"))[1]["stale_races"]

            await asyncio.to_thread(kafka_broker.start)

            async def fresh_beat() -> bool:
                msg = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
                return msg["type"] == "heartbeat" and "stale" not in msg

            await wait_for(fresh_beat, 90, "a heartbeat without stale", 0)
        await wait_for(fresh, 90, "both services healthy again and the board fresh", 0.5)
        assert noticed < 10.0, f"the outage took {noticed:.1f} s to show on /healthz"

        # Stopped while Kafka is away, each still stops by itself within its grace (a
        # Kafka client's flush or goodbye used to hold them until SIGKILL).
        await asyncio.to_thread(kafka_broker.stop)
        began = time.monotonic()
        await b.stop()
        stopped = True
        assert time.monotonic() - began < 15.0
        assert worker.proc is not None
        began = time.monotonic()
        killed = await asyncio.to_thread(stop_child, worker.proc, 25.0)
        took = time.monotonic() - began
        assert not killed and took < 25.0, f"the worker took {took:.1f} s to stop"
    finally:
        if not stopped:
            await b.stop()
        worker.stop()
        if not await asyncio.to_thread(kafka_broker.answers):
            await asyncio.to_thread(kafka_broker.start)
