"""What every ingest handler shares: settings, registry, keys, Kafka, metrics, clock.

The handlers decode; this turns an accepted fix or read into its Kafka record and
waits for Kafka. Keeping it here means the JSON API and the OsmAnd port make the same
records and obey the same rules.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ingest.auth import Authenticator
from ingest.devices import DeviceRegistry
from ingest.metrics import IngestMetrics
from ingest.producer import Message, Sink
from ingest.settings import IngestSettings
from race_engine.model import ChipRead, Fix
from zegama_live.records import ChipReadRecord, PingRecord, encode_chip_read, encode_ping
from zegama_live.topics import CHIP_READS, PINGS, runner_key

UNKNOWN_DEVICE = "unknown_device"
NOT_YOUR_DEVICE = "not_your_device"
MISSING_KEY = "missing_key"
BAD_KEY = "bad_key"
KAFKA_UNAVAILABLE = "kafka_unavailable"
PAYLOAD_TOO_LARGE = "payload_too_large"
BODY_CUT_SHORT = "body_cut_short"  # the client went away before sending its whole body
CUT_SHORT_MESSAGE = "the connection ended before the whole body came: send the request again"


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Ingest:
    """The state of one ingest process; one instance serves both ports."""

    settings: IngestSettings
    registry: DeviceRegistry
    sink: Sink
    metrics: IngestMetrics = field(default_factory=IngestMetrics)
    clock: Callable[[], int] = wall_clock_ms
    checkpoints: frozenset[str] | None = None  # None: any checkpoint id is accepted

    def __post_init__(self) -> None:
        s = self.settings
        self.auth = Authenticator(s.ingest_key, s.device_secret, disabled=s.no_auth)
        self.race = s.race  # resolved once: it touches the file system
    @property
    def max_future_ms(self) -> int:
        return int(self.settings.max_future_s * 1000)

    def unknown_device_message(self, device: str) -> str:
        return (
            f"device {device!r} is not in entrants.csv of race {self.race}: check the id "
            "set in the tracker, or ask race control to assign it to a bib"
        )

    def ping_message(
        self, bib: str, fix: Fix, raw: dict[str, Any], source: str, now_ms: int,
        speed: float | None = None, heading: float | None = None,
    ) -> Message:
        record = PingRecord(self.race, bib, fix, now_ms, source, speed, heading, raw)
        return (PINGS, runner_key(self.race, bib), encode_ping(record))

    def chip_message(
        self, read: ChipRead, chip: str | None, raw: dict[str, Any], now_ms: int
    ) -> Message:
        record = ChipReadRecord(self.race, read, now_ms, chip, "chip-api", raw)
        return (CHIP_READS, runner_key(self.race, read.bib), encode_chip_read(record))

    async def send(self, messages: Sequence[Message]) -> None:
        """Wait for Kafka to acknowledge ``messages``. Raises KafkaUnavailable."""
        began = time.perf_counter()
        try:
            await self.sink.send_all(messages)
        finally:
            self.metrics.kafka_ready.set(1 if self.sink.ready else 0)
        self.metrics.kafka_ack_seconds.observe(time.perf_counter() - began)

    def retry_after(self) -> dict[str, str]:
        return {"Retry-After": str(self.settings.retry_after_s)}


INGEST_KEY: web.AppKey[Ingest] = web.AppKey("ingest", Ingest)
