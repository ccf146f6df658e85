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
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    fetch_wait_ms: int = 1500

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_wait_ms
        return consumer


def transport_class(fetch_wait_ms: int) -> type[driver.Transport]:
    """Faust's aiokafka transport, its worker consumer fetching with ``fetch_wait_ms``."""
    if fetch_wait_ms < 1:
        raise ValueError(f"fetch wait must be at least 1 ms, got {fetch_wait_ms}")
    thread = type("ConsumerThread", (_ConsumerThread,), {"fetch_wait_ms": fetch_wait_ms})

    class Consumer(driver.Consumer):
        def _new_consumer_thread(self) -> Any:
            return thread(self, loop=self.loop, beacon=self.beacon)

    return type("Transport", (driver.Transport,), {"Consumer": Consumer})


def install(app: faust.App, fetch_wait_ms: int) -> None:
    """Make ``app``'s worker consumer fetch with ``fetch_wait_ms``; call before the app
    starts."""
    app.transport = transport_class(fetch_wait_ms)(app.conf.broker_consumer, app)
