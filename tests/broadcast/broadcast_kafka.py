"""Run a real broadcaster against the session's Kafka broker, and produce records to it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import websockets
from aiokafka import AIOKafkaProducer
from broadcast_client import unbatched
from broadcast_records import race_copy

from broadcast.app import Broadcaster
from broadcast.settings import BroadcastSettings
from zegama_live.records.websocket import decode_frame

FEED_KEY = "k-media-0123456789"
TOKEN = "t-maite-0123456789"
Json = dict[str, Any]


def unique_race(tmp: Path) -> Path:
    """A copy of the mini race under a name no other test uses (topics are shared)."""
    return race_copy(tmp, "mini-" + uuid.uuid4().hex[:10])


def settings_for(bootstrap: str, race_dir: Path, **changes: Any) -> BroadcastSettings:
    base = BroadcastSettings(host="127.0.0.1", http_port=0, ws_port=0, bootstrap=bootstrap,
                             races=(race_dir,), feed_keys=(("media", FEED_KEY),),
                             control_tokens=(("maite", TOKEN),), tick_ms=50)
    return replace(base, **changes)


@contextlib.asynccontextmanager
async def running(settings: BroadcastSettings) -> AsyncIterator[Broadcaster]:
    """A started broadcaster whose views are rebuilt from Kafka."""
    b = Broadcaster(settings)
    try:
        await b.start(wait_caught_up_s=30)
        yield b
    finally:
        await b.stop()


@contextlib.asynccontextmanager
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def produce(p: AIOKafkaProducer, records: Iterable[tuple[str, str, Json]]) -> None:
    """Send records in order and wait until Kafka has them all."""
    futures = [await p.send(topic, orjson.dumps(rec), key=key.encode())
               for topic, key, rec in records]
    await asyncio.gather(*futures)


# The messages of a batch a connection received and the test has not taken yet.
_waiting: weakref.WeakKeyDictionary[websockets.ClientConnection, deque[Json]] = \
    weakref.WeakKeyDictionary()


async def receive(ws: websockets.ClientConnection, timeout: float = 10.0) -> Json:
    """The next JSON message (heartbeats skipped, batches taken apart), checked against
    the protocol's records."""
    waiting = _waiting.setdefault(ws, deque())
    while True:
        while waiting:
            frame = waiting.popleft()
            if frame.get("type") != "heartbeat":
                return frame
        raw = await asyncio.wait_for(ws.recv(), timeout)
        decode_frame(raw)
        waiting.extend(unbatched(orjson.loads(raw)))


async def send(ws: websockets.ClientConnection, message: Json) -> None:
    await ws.send(orjson.dumps(message).decode())
