"""The Kafka sink's state machine, with a stand-in for the aiokafka producer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ingest_kafka import wait_until

from ingest.producer import KafkaSink, KafkaUnavailable


class FakeClient:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def fetch_all_metadata(self) -> None:
        if not self.broker.up:
            raise ConnectionError("down")


class Broker:
    """What the fake producers talk to: up or down, and what it acknowledged."""

    def __init__(self) -> None:
        self.up = False
        self.acked: list[tuple[str, bytes, bytes]] = []
        self.producers = 0
        self.hang = False
        self.partitions: dict[bytes, int] = {}


class FakeProducer:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.client = FakeClient(broker)
        broker.producers += 1

    async def start(self) -> None:
        if not self.broker.up:
            raise ConnectionError("Unable to bootstrap")

    async def stop(self) -> None: ...

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(6))

    async def send(self, topic: str, value: bytes, key: bytes, partition: int
                   ) -> asyncio.Future[Any]:
        self.broker.partitions[key] = partition
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.broker.hang:
            return fut  # never acknowledged
        if self.broker.up:
            self.broker.acked.append((topic, key, value))
            fut.set_result(None)
        else:
            fut.set_exception(ConnectionError("not acknowledged"))
        return fut


def make(broker: Broker, ack_timeout_s: float = 0.2) -> KafkaSink:
    return KafkaSink("fake:9092", ack_timeout_s=ack_timeout_s, probe_interval_s=0.05,
                     factory=lambda bootstrap, timeout_ms: FakeProducer(broker))


async def test_starts_while_the_broker_is_down_and_connects_later() -> None:
    broker = Broker()
    sink = make(broker)
    await sink.start()
    try:
        await asyncio.sleep(0.1)
        assert not sink.ready
        with pytest.raises(KafkaUnavailable, match="cannot connect"):
            await sink.send_all([("t", b"k", b"v")])
        broker.up = True
        await wait_until(lambda: sink.ready, 5.0)
        await sink.send_all([("t", b"k", b"v1"), ("t", b"k", b"v2")])
        assert [v for _, _, v in broker.acked] == [b"v1", b"v2"]
    finally:
        await sink.stop()


async def test_a_failed_send_reconnects_with_a_new_producer() -> None:
    broker = Broker()
    broker.up = True
    sink = make(broker)
    await sink.start()
    try:
        await wait_until(lambda: sink.ready, 5.0)
        broker.up = False
        with pytest.raises(KafkaUnavailable, match="did not acknowledge"):
            await sink.send_all([("t", b"k", b"lost")])
        assert not sink.ready
        broker.up = True
        await wait_until(lambda: sink.ready, 5.0)
        await sink.send_all([("t", b"k", b"after")])
        assert broker.producers >= 2
        assert broker.acked == [("t", b"k", b"after")]
    finally:
        await sink.stop()


async def test_no_acknowledgement_in_time_is_unavailable() -> None:
    broker = Broker()
    broker.up = True
    sink = make(broker, ack_timeout_s=0.1)
    await sink.start()
    try:
        await wait_until(lambda: sink.ready, 5.0)
        broker.hang = True
        with pytest.raises(KafkaUnavailable, match="TimeoutError"):
            await sink.send_all([("t", b"k", b"v")])
    finally:
        await sink.stop()


async def test_a_send_in_flight_answers_as_soon_as_the_broker_is_known_gone() -> None:
    broker = Broker()
    broker.up = True
    sink = make(broker, ack_timeout_s=10.0)
    await sink.start()
    try:
        await wait_until(lambda: sink.ready, 5.0)
        broker.hang = True  # sent, never acknowledged ...
        broker.up = False  # ... and the next probe finds no broker
        began = asyncio.get_running_loop().time()
        with pytest.raises(KafkaUnavailable, match="did not acknowledge"):
            await sink.send_all([("t", b"k", b"v")])
        took = asyncio.get_running_loop().time() - began
        assert took < 1.0, f"waited {took:.1f} s of the 10 s ack timeout"
    finally:
        await sink.stop()


async def test_the_probe_notices_a_silent_outage() -> None:
    broker = Broker()
    broker.up = True
    sink = make(broker)
    await sink.start()
    try:
        await wait_until(lambda: sink.ready, 5.0)
        broker.up = False
        await wait_until(lambda: not sink.ready, 5.0)
        assert "broker not answering" in sink.last_error or "cannot connect" in sink.last_error
    finally:
        await sink.stop()


async def test_partitions_follow_kafkas_default_partitioner() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    broker = Broker()
    broker.up = True
    sink = make(broker)
    await sink.start()
    try:
        await wait_until(lambda: sink.ready, 5.0)
        keys = [f"zegama-2026:{bib}".encode() for bib in range(1, 200)]
        await sink.send_all([("pings.v1", k, b"v") for k in keys])
        await sink.send_all([("pings.v1", k, b"again") for k in keys])  # from the cache
        expected = {k: DefaultPartitioner()(k, list(range(6)), list(range(6))) for k in keys}
        assert broker.partitions == expected
        assert len(set(expected.values())) == 6
    finally:
        await sink.stop()
