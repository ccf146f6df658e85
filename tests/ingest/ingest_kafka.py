"""Helpers of the ingest integration tests: a live ingest on the test broker, a reader."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer

from ingest.app import build_api_app, build_osmand_app
from ingest.devices import DeviceRegistry
from ingest.producer import KafkaSink
from ingest.service import Ingest
from ingest.settings import IngestSettings
from zegama_live.records import PingRecord, decode_ping
from zegama_live.topics import PINGS

DATA = Path(__file__).parent / "data"
KEY = "integration-key"


@dataclass
class LiveIngest:
    ingest: Ingest
    api: TestClient
    osmand: TestClient

    @property
    def race(self) -> str:
        return self.ingest.race


@asynccontextmanager
async def live_ingest(bootstrap: str, *, ack_timeout_s: float = 10.0
                      ) -> AsyncIterator[LiveIngest]:
    """An ingest on the given broker, with a race id of its own (so tests don't mix)."""
    settings = IngestSettings(race_dir=DATA, race_id=f"it-{uuid.uuid4().hex[:8]}",
                              kafka_bootstrap=bootstrap, ingest_key=KEY,
                              ack_timeout_s=ack_timeout_s, retry_after_s=1)
    registry = DeviceRegistry(DATA / "entrants.csv")
    registry.reload()
    sink = KafkaSink(bootstrap, ack_timeout_s=ack_timeout_s, probe_interval_s=0.5)
    ingest = Ingest(settings, registry, sink)
    await sink.start()
    await wait_until(lambda: sink.ready, 30.0)
    try:
        async with TestClient(TestServer(build_api_app(ingest))) as api, \
                TestClient(TestServer(build_osmand_app(ingest))) as osmand:
            yield LiveIngest(ingest, api, osmand)
    finally:
        await sink.stop()


async def wait_until(predicate: object, timeout_s: float) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.1)


async def read_pings(bootstrap: str, race: str, expected: int, timeout_s: float = 30.0
                     ) -> list[tuple[bytes, PingRecord]]:
    """Every pings.v1 record of ``race`` from the beginning, in partition order per key.

    Reads until ``expected`` records were seen and the topic end is reached, or timeout.
    """
    consumer = AIOKafkaConsumer(PINGS, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: list[tuple[bytes, PingRecord]] = []
    prefix = f"{race}:".encode()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    if r.key is not None and r.key.startswith(prefix):
                        found.append((r.key, decode_ping(r.value)))
            if not batches and len(found) >= expected:
                break
    finally:
        await consumer.stop()
    return found
