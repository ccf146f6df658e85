"""The Kafka side of ingest: an idempotent ``acks=all`` producer that heals itself.

``send_all`` returns only when Kafka has acknowledged every record it was given, and
raises KafkaUnavailable otherwise, so a handler answers 202 for nothing Kafka did not
take. A supervisor task connects (and reconnects) in the background: the service
starts while the broker is down and recovers, without a restart, when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)

Message = tuple[str, bytes, bytes]  # topic, key, value


class KafkaUnavailable(RuntimeError):
    """Kafka did not acknowledge (broker down, timeout): the caller answers 503."""


class Sink(Protocol):
    """Where accepted records go; the HTTP handlers know only this."""

    @property
    def ready(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send_all(self, messages: Sequence[Message]) -> None: ...


def _aiokafka_producer(bootstrap: str, request_timeout_ms: int) -> Any:
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="zegama-ingest",
        acks="all",
        enable_idempotence=True,
        linger_ms=2,  # coalesce concurrent requests' records into one produce request
        max_batch_size=512 * 1024,
        request_timeout_ms=request_timeout_ms,
    )


class KafkaSink:
    """An aiokafka producer behind ``send_all``, with a reconnecting supervisor."""

    def __init__(
        self,
        bootstrap: str,
        *,
        ack_timeout_s: float = 10.0,
        probe_interval_s: float = 1.0,
        factory: Callable[[str, int], Any] = _aiokafka_producer,
    ) -> None:
        self._bootstrap = bootstrap
        self._ack_timeout = ack_timeout_s
        self._probe_interval = probe_interval_s
        self._factory = factory
        self._producer: Any = None
        self._ready = False
        self._broken = False  # a send failed: replace the producer
        # Set the moment the broker is known gone (a failed send or probe): sends still
        # waiting for their acknowledgement answer at once instead of at the ack timeout.
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._partitions: dict[tuple[str, bytes], int] = {}
        self.last_error = "not connected yet"

    @property
    def ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        """Start the supervisor; returns at once, connected or not."""
        self._task = asyncio.create_task(self._supervise(), name="kafka-supervisor")

    async def stop(self) -> None:
        """Stop the supervisor and flush and close the producer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._producer is not None:
            await self._close(self._producer)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        self._ready = False

    async def send_all(self, messages: Sequence[Message]) -> None:
        """Send ``messages`` and wait for Kafka to acknowledge them all.

        Raises KafkaUnavailable when not connected, on any send error, or after the
        acknowledgement timeout; some of the records may then still reach Kafka, so a
        retry can duplicate them (at least once: consumers treat the same device and
        time as a duplicate).
        """
        producer = self._producer
        if producer is None or not self._ready:
            raise KafkaUnavailable(f"Kafka is unavailable: {self.last_error}")
        send = asyncio.ensure_future(self._send(producer, messages))
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait((send, lost), timeout=self._ack_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not send.done():  # the records may still reach Kafka: a retry can duplicate them
                send.cancel()
        if send in done:
            exc = send.exception()
            if exc is None:
                return
            # any failure of the client means "not acknowledged"
            self._fail(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            raise KafkaUnavailable(f"Kafka did not acknowledge: {self.last_error}") from exc
        if not done:
            self._fail(f"TimeoutError: no acknowledgement within {self._ack_timeout:g} s")
        raise KafkaUnavailable(f"Kafka did not acknowledge: {self.last_error}")

    async def _send(self, producer: Any, messages: Sequence[Message]) -> None:
        futures = []
        for topic, key, value in messages:
            partition = self._partitions.get((topic, key))
            if partition is None:
                partition = await self._partition(producer, topic, key)
            futures.append(await producer.send(topic, value, key=key, partition=partition))
        await asyncio.gather(*futures)

    async def _partition(self, producer: Any, topic: str, key: bytes) -> int:
        """The partition Kafka's default partitioner picks for ``key``, remembered.

        The same murmur2 rule as the Java client and Faust, computed once per runner key
        rather than once per record (it is pure Python in aiokafka).
        """
        from aiokafka.partitioner import murmur2

        if len(self._partitions) > 100_000:
            self._partitions.clear()
        partitions = sorted(await producer.partitions_for(topic))
        chosen = int(partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)])
        self._partitions[(topic, key)] = chosen
        return chosen

    def _fail(self, why: str) -> None:
        if self._ready:
            log.warning("Kafka unavailable: %s", why)
        self._ready = False
        self.last_error = why
        self._broken = True
        self._lost.set()

    async def _supervise(self) -> None:
        backoff = 0.2
        while True:
            if self._producer is None:
                producer = None
                try:
                    producer = self._factory(self._bootstrap, int(self._ack_timeout * 1000))
                    await producer.start()
                except Exception as exc:
                    self.last_error = f"cannot connect to {self._bootstrap}: {exc}"
                    if producer is not None:
                        await self._close(producer)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                self._producer, self._ready, backoff = producer, True, 0.2
                self._partitions.clear()  # the partition count may have changed
                self._broken = False
                self._lost.clear()
                log.info("Kafka producer connected to %s", self._bootstrap)
                continue
            await self._pause()
            if self._broken:
                # A send failed: start afresh rather than trust the producer's state.
                old, self._producer = self._producer, None
                task = asyncio.create_task(self._close(old))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
                continue
            await self._probe()

    async def _pause(self) -> None:
        """Sleep one probe interval, waking early when a send failed."""
        step = min(self._probe_interval, 0.05)
        for _ in range(max(1, round(self._probe_interval / step))):
            if self._broken:
                return
            await asyncio.sleep(step)

    async def _probe(self) -> None:
        try:
            async with asyncio.timeout(3.0):
                await self._producer.client.fetch_all_metadata()
        except Exception as exc:
            self._fail(f"broker not answering: {exc or type(exc).__name__}")
            return
        if not self._ready:
            log.info("Kafka is back")
        self._ready = True
        self._lost.clear()

    async def _close(self, producer: Any) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(30.0):
                await producer.stop()
