"""The broker stops while devices keep posting: nothing acknowledged is lost.

Every fix answered 202 (batch API) or 200 (OsmAnd) is in pings.v1 once the broker is
back; every other answer is a retryable 503 with Retry-After; the ingest recovers
without a restart.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from ingest_kafka import KEY, live_ingest, read_pings, wait_until

pytestmark = pytest.mark.integration

T0 = 1_779_001_200_000
ticket = itertools.count()


@dataclass
class Outcomes:
    stored: set[int] = field(default_factory=set)  # fix times Kafka acknowledged
    refused: list[tuple[int, str | None]] = field(default_factory=list)  # status, Retry-After
    waits: list[float] = field(default_factory=list)  # seconds each refused request took
    stop: bool = False


async def post_batches(live: Any, out: Outcomes) -> None:
    while not out.stop:
        t = T0 + next(ticket)
        body = orjson.dumps([{"device": "ZGM-0001", "ts": t, "lat": 42.9, "lon": -2.3}])
        began = time.monotonic()
        resp = await live.api.post("/v1/pings", data=body,
                                   headers={"Authorization": f"Bearer {KEY}"})
        if resp.status == 202:
            out.stored.add(t)
        else:
            out.refused.append((resp.status, resp.headers.get("Retry-After")))
            out.waits.append(time.monotonic() - began)
        await asyncio.sleep(0.01)


async def post_osmand(live: Any, out: Outcomes) -> None:
    while not out.stop:
        t = T0 + next(ticket)
        began = time.monotonic()
        resp = await live.osmand.post("/", data={"id": "ZGM-0002", "lat": "42.9", "lon": "-2.3",
                                                 "timestamp": str(t), "key": KEY})
        if resp.status == 200:
            out.stored.add(t)
        else:
            out.refused.append((resp.status, resp.headers.get("Retry-After")))
            out.waits.append(time.monotonic() - began)
        await asyncio.sleep(0.01)


async def test_broker_outage_loses_nothing_acknowledged(kafka_broker: Any) -> None:
    if not await asyncio.to_thread(kafka_broker.answers):
        await asyncio.to_thread(kafka_broker.start)
    bootstrap = kafka_broker.bootstrap
    out = Outcomes()
    async with live_ingest(bootstrap, ack_timeout_s=10.0) as live:
        live.ingest.clock = lambda: T0 + 10_000_000
        posters = [asyncio.create_task(post_batches(live, out)),
                   asyncio.create_task(post_osmand(live, out))]
        try:
            await wait_until(lambda: len(out.stored) >= 20, 30.0)
            await asyncio.to_thread(kafka_broker.stop)
            await wait_until(lambda: len(out.refused) >= 10, 30.0)
            health = await live.api.get("/healthz")
            assert health.status == 503
            assert (await health.json())["kafka"] == "down"
            await asyncio.to_thread(kafka_broker.start)
            before = len(out.stored)
            await wait_until(lambda: len(out.stored) >= before + 20, 60.0)
            assert (await live.api.get("/healthz")).status == 200
        finally:
            out.stop = True
            await asyncio.gather(*posters)
        race = live.race
    records = await read_pings(bootstrap, race, expected=len(out.stored))
    in_kafka = {rec.fix.t for _, rec in records}
    assert out.stored <= in_kafka, f"acknowledged but lost: {sorted(out.stored - in_kafka)}"
    assert out.refused, "the outage was not seen by any request"
    assert all(status == 503 and retry == "1" for status, retry in out.refused), out.refused
    # Once the producer knows the broker is gone, nothing waits out the 10 s ack timeout:
    # not the requests in flight then, nor the ones after.
    assert max(out.waits) < 3.0, f"a refused request took {max(out.waits):.1f} s"
