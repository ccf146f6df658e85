"""Is Kafka reachable? One metadata request every few seconds, on a client of its own.

The processors and the broadcaster answer ``/healthz`` with it: a service whose clients
only retry in silence (a consumer's fetch returns nothing while the brokers are away)
would otherwise say healthy through a whole outage. The probe's client is separate from
the service's consumers and producers, so asking never disturbs them; any broker of the
bootstrap list answering is "up" (a cluster that lost one broker is still up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class KafkaProbe:
    """``reachable`` is None before the first answer, then True or False."""

    def __init__(self, bootstrap: str, *, interval_s: float = 2.0, timeout_s: float = 3.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.bootstrap = bootstrap
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.clock = clock
        self.reachable: bool | None = None
        self.changed_at = clock()  # when ``reachable`` last changed
        self.last_error = ""
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start probing in the background; returns at once."""
        self._task = asyncio.create_task(self.run(), name="kafka-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()

    async def run(self) -> None:
        """Probe forever (the caller cancels it)."""
        try:
            while True:
                await self.probe()
                await asyncio.sleep(self.interval_s)
        finally:
            await self._close()

    async def probe(self) -> bool:
        """Ask once; set and return ``reachable``."""
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._client is None:
                    self._client = self._new_client()
                    await self._client.bootstrap()
                await self._client.fetch_all_metadata()
        except Exception as exc:  # refused, timed out, no broker answered: all "down"
            self._set(False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            await self._close()  # the next probe starts from the bootstrap list again
            return False
        self._set(True, "")
        return True

    def state(self) -> dict[str, Any]:
        """What /healthz shows: ``kafka`` up, down or unknown, and since when."""
        word = {None: "unknown", True: "up", False: "down"}[self.reachable]
        out: dict[str, Any] = {"kafka": word}
        if self.reachable is False:
            out["kafka_down_s"] = round(self.clock() - self.changed_at, 1)
            out["kafka_error"] = self.last_error
        return out

    def _set(self, reachable: bool, error: str) -> None:
        if reachable != self.reachable:
            if reachable:
                log.info("Kafka (%s) answers", self.bootstrap)
            elif self.reachable is not None:
                log.warning("Kafka (%s) does not answer: %s", self.bootstrap, error)
            self.reachable, self.changed_at = reachable, self.clock()
        self.last_error = error

    def _new_client(self) -> Any:
        from aiokafka.client import AIOKafkaClient

        return AIOKafkaClient(bootstrap_servers=self.bootstrap, client_id="zegama-health",
                              request_timeout_ms=int(self.timeout_s * 1000))

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()
