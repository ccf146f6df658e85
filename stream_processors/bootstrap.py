"""Before the Faust worker starts: the broker answers, the worker's internal topics
exist and the consumer group has a coordinator.

Against a brand-new broker, Faust's own start raced both: the group coordinator
answered ``GroupCoordinatorNotAvailable`` while ``__consumer_offsets`` was being made,
and the partition assignor ignored internal topics that did not exist yet ("Ignoring
missing topic"), so the worker joined with no partition of them and never published.
Doing both here, with a deadline and a clear error, makes the start deterministic.
"""

from __future__ import annotations

import asyncio
import logging
import time

from zegama_live.kafka_local import create_topics_async
from zegama_live.topics import internal_topics

log = logging.getLogger("stream_processors.bootstrap")
GROUP_COORDINATOR = 0  # FindCoordinator's key type for a consumer group


class BootstrapError(RuntimeError):
    """The broker did not become ready for this worker in time."""


async def prepare(bootstrap: str, app_id: str, timeout_s: float = 90.0) -> list[str]:
    """Create the worker's internal topics that are missing and wait until the group
    ``app_id`` has a coordinator. Returns the topics created.

    Raises:
        BootstrapError: naming what was not ready within ``timeout_s``.
    """
    from aiokafka import AIOKafkaClient
    from aiokafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    created: list[str] | None = None
    last: Exception | None = None
    while created is None and time.monotonic() < deadline:
        try:
            created = await create_topics_async(bootstrap, internal_topics(app_id))
        except (KafkaError, OSError) as e:
            last = e
            await asyncio.sleep(0.5)
    if created is None:
        raise BootstrapError(f"Kafka at {bootstrap} did not let the internal topics of "
                             f"{app_id!r} be created within {timeout_s:.0f} s: {last!r}")
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    try:
        await client.bootstrap()
        while True:
            try:
                await client.coordinator_lookup(GROUP_COORDINATOR, app_id)
                return created
            except KafkaError as e:  # GroupCoordinatorNotAvailable while it is made
                last = e
            if time.monotonic() >= deadline:
                raise BootstrapError(f"Kafka at {bootstrap} has no group coordinator for "
                                     f"{app_id!r} after {timeout_s:.0f} s: {last!r}")
            await asyncio.sleep(0.5)
    finally:
        await client.close()
