"""Shared values of the ingest tests: the fixed clock, keys, and a fake Kafka."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ingest.producer import KafkaUnavailable, Message

DATA = Path(__file__).parent / "data"
NOW_MS = 1_779_001_200_000  # 2026-05-17T07:00:00Z, the clock of every unit test
RACE_KEY = "race-key-for-tests"
ADMIN_KEY = "admin-key-for-tests"
DEVICE_SECRET = "device-secret-for-tests"


class FakeSink:
    """Stands in for Kafka: records what it acknowledged, or refuses when told to."""

    def __init__(self) -> None:
        self.ready = True
        self.fail = False
        self.sent: list[Message] = []
        self.last_error = ""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send_all(self, messages: Sequence[Message]) -> None:
        if self.fail or not self.ready:
            self.last_error = "broker down (fake)"
            raise KafkaUnavailable("broker down (fake)")
        self.sent.extend(messages)
