"""Follow race control's ``control.v1`` topic for device reassignments.

Race control publishes ``{"op": "reassign", "device": "ZGM-0413", "bib": "101"}``
(keyed by race) when a runner swaps a dead tracker for a spare. Every ingest process
reads the topic from its beginning, so all of them, including one started later or
restarted, apply the same reassignments in the same order. Other ops are for the stream
processors and are ignored here. A command that cannot be applied is logged and
skipped, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson

from ingest.devices import DeviceRegistry, RegistryError
from zegama_live.topics import CONTROL

log = logging.getLogger(__name__)


def apply_control(registry: DeviceRegistry, race: str, key: bytes | None, value: bytes) -> bool:
    """Apply one ``control.v1`` record to ``registry`` if it reassigns a device of ``race``.

    Returns True when a reassignment was applied. Never raises for a bad record.
    """
    try:
        cmd = orjson.loads(value)
    except orjson.JSONDecodeError:
        log.warning("control.v1 record is not JSON; skipped")
        return False
    if not isinstance(cmd, dict) or cmd.get("op") != "reassign":
        return False
    record_race = cmd.get("race", key.decode("utf-8", "replace") if key else None)
    if record_race != race:
        return False
    device, bib = cmd.get("device"), cmd.get("bib")
    if not isinstance(device, str) or not (bib is None or isinstance(bib, str)):
        log.warning("control.v1 reassign needs string 'device' and 'bib'; skipped: %s", cmd)
        return False
    try:
        registry.reassign(device, bib)
    except RegistryError as exc:
        log.warning("control.v1 reassign skipped: %s", exc)
        return False
    return True


def _consumer(bootstrap: str) -> Any:
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(CONTROL, bootstrap_servers=bootstrap, group_id=None,
                            auto_offset_reset="earliest", enable_auto_commit=False)


class ControlFollower:
    """Reads ``control.v1`` in the background and applies reassignments; reconnects."""

    def __init__(self, bootstrap: str, race: str, registry: DeviceRegistry,
                 factory: Callable[[str], Any] = _consumer) -> None:
        self._bootstrap = bootstrap
        self._race = race
        self._registry = registry
        self._factory = factory
        self._task: asyncio.Task[None] | None = None
        self.applied = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="control-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        backoff = 0.5
        while True:
            consumer = self._factory(self._bootstrap)
            try:
                await consumer.start()
                backoff = 0.5
                # Reading from the start again after a reconnect is harmless: the same
                # reassignments applied in the same order give the same mapping.
                async for record in consumer:
                    if apply_control(self._registry, self._race, record.key, record.value):
                        self.applied += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("control.v1 not followed (%s); retrying in %.1f s", exc, backoff)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
