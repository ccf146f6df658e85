"""The worker's consumer fetches with the configured wait, not Faust's fixed 1.5 s, and
loses no input across a rebalance.

The hook reaches into Faust's aiokafka driver and aiokafka's consumer (see
stream_processors/transport.py); this test fails when an upgrade of either moves it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from stream_processors import transport


def worker_consumer(tmp_path: Path, wait_ms: int | None) -> object:
    async def build() -> object:
        app = faust.App("fetch-wait-test", broker="kafka://127.0.0.1:1",
                        datadir=str(tmp_path), store="memory://")
        if wait_ms is not None:
            transport.install(app, wait_ms)
        app.Table("t", partitions=1, default=None)  # a worker's consumer, as ours has
        return app.consumer._thread._create_worker_consumer(app.transport)
    return asyncio.run(build())


def test_the_worker_consumer_fetches_with_the_configured_wait(tmp_path: Path) -> None:
    assert worker_consumer(tmp_path, 20)._fetch_max_wait_ms == 20  # type: ignore[attr-defined]


def test_without_it_faust_waits_1500_ms(tmp_path: Path) -> None:
    # What the hook exists for: if Faust makes the wait a setting, use that instead.
    assert worker_consumer(tmp_path, None)._fetch_max_wait_ms == 1500  # type: ignore[attr-defined]


def test_a_wait_below_one_ms_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 ms"):
        transport.transport_class(0)


# ------------------------------------------- input lost across a rebalance (chaos suite)

def app_consumer(tmp_path: Path, install: bool) -> tuple[faust.App, object]:
    async def build() -> tuple[faust.App, object]:
        app = faust.App("read-offsets-test", broker="kafka://127.0.0.1:1",
                        datadir=str(tmp_path), store="memory://")
        if install:
            transport.install(app, 20)
        app.topics.add(app.topic("pings.v1"))  # an acknowledged input, as a stream's
        app.Table("t", partitions=1, default=None)  # and a changelog, not acknowledged
        await app.topics._update_indices()  # what Faust does when the consumer subscribes
        return app, app.consumer
    return asyncio.run(build())


def test_the_fetch_loop_sees_no_read_offset_on_stream_inputs(tmp_path: Path) -> None:
    # Faust's fetch loop drops a record below this and counts the offsets up to a record
    # further on as acknowledged; after a seek to the committed offset both lost input.
    _, consumer = app_consumer(tmp_path, install=True)
    pings, changelog = TP("pings.v1", 0), TP("read-offsets-test-t-changelog", 0)
    consumer._read_offset.update({pings: 2148, changelog: 17})  # type: ignore[attr-defined]
    assert consumer._read_offset[pings] is None  # type: ignore[attr-defined]
    # The changelog keeps Faust's duplicate check: its records must not apply twice.
    assert consumer._read_offset[changelog] == 17  # type: ignore[attr-defined]


def test_without_it_faust_keeps_the_read_offset(tmp_path: Path) -> None:
    _, consumer = app_consumer(tmp_path, install=False)
    consumer._read_offset.update({TP("pings.v1", 0): 2148})  # type: ignore[attr-defined]
    assert consumer._read_offset[TP("pings.v1", 0)] == 2148  # type: ignore[attr-defined]


def message(offset: int, generation: int) -> ConsumerMessage:
    return ConsumerMessage("pings.v1", 0, offset, 0.0, 0, [], b"k", b"v", None, 1, 1,
                           TP("pings.v1", 0), generation_id=generation)


def test_an_event_of_an_earlier_generation_is_not_acknowledged(tmp_path: Path) -> None:
    app, consumer = app_consumer(tmp_path, install=True)
    app.consumer_generation_id = 5
    assert not consumer.ack(message(10, generation=4))  # type: ignore[attr-defined]
    assert consumer._acked[TP("pings.v1", 0)] == []  # type: ignore[attr-defined]
    assert consumer.ack(message(10, generation=5))  # type: ignore[attr-defined]
    assert consumer._acked[TP("pings.v1", 0)] == [10]  # type: ignore[attr-defined]
