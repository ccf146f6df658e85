"""Faust's Kafka transport with a fetch wait short enough for live standings.

Faust builds its worker consumer with ``fetch_max_wait_ms=1500`` written into the code,
with no setting. aiokafka keeps one fetch in flight per broker, and a fetch leaves out
the partitions whose records the worker has not taken yet; when such a fetch names
only quiet partitions (an internal topic, a table's changelog), the broker holds it up
to the whole wait while new fixes pile up behind it. Measured: fixes reached the
per-runner stage in bursts every ~1.7 s (docs/processors.md, "Fetch wait").

A worker made with :func:`install` fetches with ``fetch_wait_ms`` instead. The cost is an
empty fetch every ``fetch_wait_ms`` per worker while nothing arrives (50 small requests
a second at 20 ms).

Faust offers no public way to pass consumer options, so this subclasses its aiokafka
driver's consumer thread (``_create_worker_consumer``, ``_new_consumer_thread``) and
sets the wait on the aiokafka consumer it builds, before the consumer starts and
creates its fetcher from it (``_fetch_max_wait_ms``, the attribute aiokafka keeps its
constructor argument in). The app's ``transport`` setter is public.

The same consumer mends two ways Faust loses input across a rebalance, found by the
chaos suite (split times off the replay's by up to minutes after a worker came back):

* **Read offsets.** Faust's fetch loop drops a record whose offset is below its
  partition's "read offset" (taken as read already), and when a record is more than one
  past it, counts the offsets between as acknowledged (a "gap", meant for compacted
  topics). After a rebalance Faust seeks to the committed offsets while records fetched
  before the seek are still being handed out, so both fire: measured, the first record
  after a seek to offset 2148 was 2214, and 2149-2214 were committed unprocessed (66
  fixes lost). Our stream inputs are neither compacted nor transactional, so for them
  the loop is told no offset was read: it drops nothing and sees no gap; a record read
  twice is processed twice, which changes nothing (``stream_processors.app``), and the
  committed offset waits until every offset below it was processed.
* **Stale acknowledgements.** A stream skips an event fetched before the latest
  rebalance and acknowledges it; the partition is read again from the committed offset,
  but the skipped copy's acknowledgement let the offset be committed before the copy
  read again was processed. Acknowledgements of events from an earlier generation are
  ignored: only the copy read again counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    fetch_wait_ms: int = 1500

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_wait_ms
        return consumer


class ReadOffsets(dict[TP, int | None]):
    """Faust's read offsets, as its fetch loop sees them: none for a topic whose events
    are acknowledged (the stream inputs), so no record of theirs is dropped or skipped;
    the offsets kept for the others (the tables' changelogs, which are compacted and
    whose records must not be applied twice out of order)."""

    def __init__(self, acked: Callable[[str], bool]) -> None:
        super().__init__()
        self.acked = acked

    def __getitem__(self, tp: TP) -> int | None:
        return None if self.acked(tp.topic) else self.get(tp)


def transport_class(fetch_wait_ms: int) -> type[driver.Transport]:
    """Faust's aiokafka transport, its worker consumer fetching with ``fetch_wait_ms``."""
    if fetch_wait_ms < 1:
        raise ValueError(f"fetch wait must be at least 1 ms, got {fetch_wait_ms}")
    thread = type("ConsumerThread", (_ConsumerThread,), {"fetch_wait_ms": fetch_wait_ms})

    class Consumer(driver.Consumer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._read_offset = ReadOffsets(self.app.topics.acks_enabled_for)

        def _new_consumer_thread(self) -> Any:
            return thread(self, loop=self.loop, beacon=self.beacon)

        def ack(self, message: Message) -> bool:
            generation = message.generation_id
            if generation is not None and generation != self.app.consumer_generation_id:
                return False  # read again from the committed offset; that copy counts
            return bool(super().ack(message))

    return type("Transport", (driver.Transport,), {"Consumer": Consumer})


def install(app: faust.App, fetch_wait_ms: int) -> None:
    """Make ``app``'s worker consumer fetch with ``fetch_wait_ms``; call before the app
    starts."""
    app.transport = transport_class(fetch_wait_ms)(app.conf.broker_consumer, app)
