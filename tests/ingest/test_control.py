"""Device reassignments from race control's control.v1 topic."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from ingest_kafka import wait_until

from ingest.control import ControlFollower, apply_control
from ingest.devices import DeviceRegistry
from zegama_live.topics import CONTROL


@pytest.fixture
def registry(race_dir: Path) -> DeviceRegistry:
    reg = DeviceRegistry(race_dir)
    reg.reload()
    return reg


def cmd(**fields: object) -> bytes:
    return orjson.dumps({"op": "reassign", **fields})


def test_reassign_of_this_race_is_applied(registry: DeviceRegistry) -> None:
    assert apply_control(registry, "r1", b"r1", cmd(device="SPARE-1", bib="102"))
    assert registry.bib_of("SPARE-1") == "102"
    assert apply_control(registry, "r1", None, cmd(race="r1", device="SPARE-2", bib="101"))
    assert registry.bib_of("SPARE-2") == "101"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (b"other-race", cmd(device="SPARE-1", bib="102")),
        (b"r1", cmd(race="other-race", device="SPARE-1", bib="102")),
        (b"r1", orjson.dumps({"op": "dnf", "bib": "102"})),
        (b"r1", cmd(device="SPARE-1", bib="999")),
        (b"r1", cmd(device=7, bib="102")),
        (b"r1", b"not json"),
        (b"r1", b"[1, 2]"),
    ],
)
def test_other_commands_are_skipped(registry: DeviceRegistry, key: bytes, value: bytes) -> None:
    assert not apply_control(registry, "r1", key, value)
    assert registry.bib_of("SPARE-1") is None


@pytest.mark.integration
async def test_follower_applies_reassignments_from_kafka(kafka_bootstrap: str,
                                                         registry: DeviceRegistry) -> None:
    race = f"ctl-{id(registry)}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(CONTROL, cmd(device="SPARE-9", bib="101"), key=race.encode())
    finally:
        await producer.stop()
    follower = ControlFollower(kafka_bootstrap, race, registry)
    await follower.start()
    try:
        await wait_until(lambda: registry.bib_of("SPARE-9") == "101", 30.0)
        assert follower.applied == 1
    finally:
        await asyncio.wait_for(follower.stop(), 10)
