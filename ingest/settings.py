"""The ingest service's settings: one frozen object, defaults in code.

Each setting has a command-line flag and an environment variable; the flag wins over
the variable, which wins over the default. This module is the only place that reads
the environment. Secrets (keys) are never shown: not in ``repr``, not in
``--print-config``, not in logs.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from zegama_live import config
from zegama_live.config import Option, SettingsError, parse_bool

__all__ = ["OPTIONS", "IngestSettings", "SettingsError", "add_arguments", "load"]


@dataclass(frozen=True)
class IngestSettings:
    """Everything the ingest service needs to run."""

    host: str = "0.0.0.0"
    port: int = 8081
    osmand_port: int = 5055
    race_dir: Path = Path("races/zegama-2026")
    race_id: str = ""  # empty: the race folder's name
    kafka_bootstrap: str = "127.0.0.1:9092"
    ingest_key: str = field(default="", repr=False)
    device_secret: str = field(default="", repr=False)
    admin_key: str = field(default="", repr=False)
    no_auth: bool = False
    max_batch: int = 1000
    max_body_bytes: int = 1_048_576
    max_future_s: float = 300.0
    ack_timeout_s: float = 10.0
    retry_after_s: int = 5
    reload_interval_s: float = 2.0
    ignore_control: bool = False

    @property
    def race(self) -> str:
        """The race id used in record keys: ``race_id`` or the race folder's name."""
        return self.race_id or self.race_dir.resolve().name

    def masked(self) -> dict[str, object]:
        """The effective settings as plain values, secrets replaced by ``***``."""
        return {**config.masked(self, SECRETS), "race": self.race}


SECRETS = frozenset({"ingest_key", "device_secret", "admin_key"})


OPTIONS: tuple[Option, ...] = (
    Option("host", "ZEGAMA_INGEST_HOST", "address to listen on", str),
    Option("port", "ZEGAMA_INGEST_PORT", "port of the JSON APIs, /healthz, /metrics", int),
    Option("osmand_port", "ZEGAMA_INGEST_OSMAND_PORT", "port of the OsmAnd protocol", int),
    Option("race_dir", "ZEGAMA_INGEST_RACE_DIR", "race folder holding entrants.csv", Path),
    Option("race_id", "ZEGAMA_INGEST_RACE_ID", "race id in record keys (default: folder)", str),
    Option("kafka_bootstrap", "ZEGAMA_KAFKA_BOOTSTRAP", "Kafka bootstrap servers: host:port, or a "
           "comma-separated list (a cluster)", config.parse_bootstrap),
    Option("ingest_key", "ZEGAMA_INGEST_KEY", "the race's ingest key (secret)", str),
    Option("device_secret", "ZEGAMA_INGEST_DEVICE_SECRET",
            "secret from which per-device tokens are derived (secret)", str),
    Option("admin_key", "ZEGAMA_INGEST_ADMIN_KEY", "key of the admin endpoints (secret)", str),
    Option("no_auth", "ZEGAMA_INGEST_NO_AUTH",
            "accept requests without any key (local development only)", parse_bool, flag=True),
    Option("max_batch", "ZEGAMA_INGEST_MAX_BATCH", "most fixes in one batch", int),
    Option("max_body_bytes", "ZEGAMA_INGEST_MAX_BODY_BYTES", "largest request body", int),
    Option("max_future_s", "ZEGAMA_INGEST_MAX_FUTURE_S",
            "refuse fixes further than this in the future (s)", float),
    Option("ack_timeout_s", "ZEGAMA_INGEST_ACK_TIMEOUT_S",
            "longest wait for Kafka's acknowledgement before answering 503 (s)", float),
    Option("retry_after_s", "ZEGAMA_INGEST_RETRY_AFTER_S", "Retry-After of a 503 (s)", int),
    Option("reload_interval_s", "ZEGAMA_INGEST_RELOAD_INTERVAL_S",
            "how often entrants.csv is checked for changes (s)", float),
    Option("ignore_control", "ZEGAMA_INGEST_IGNORE_CONTROL",
            "do not apply device reassignments published on control.v1", parse_bool, flag=True),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting; its help names the environment variable and default."""
    config.add_arguments(parser, OPTIONS, IngestSettings(), SECRETS)


def load(args: argparse.Namespace | None = None,
         environ: Mapping[str, str] | None = None) -> IngestSettings:
    """The effective settings from parsed flags and the environment.

    Raises SettingsError naming the flag or variable of a value that does not parse, the
    setting that is out of range, or that no key is set while authentication is on.
    """
    settings = IngestSettings(**config.load_values(OPTIONS, args, environ, SECRETS))
    _check(settings)
    return settings


def _check(s: IngestSettings) -> None:
    config.check_ports(s, ("port", "osmand_port"))
    config.check_positive(s, ("max_batch", "max_body_bytes", "ack_timeout_s", "retry_after_s"))
    if not s.no_auth and not (s.ingest_key or s.device_secret):
        raise SettingsError(
            "no key is set: set ZEGAMA_INGEST_KEY (or ZEGAMA_INGEST_DEVICE_SECRET), "
            "or pass --no-auth for local development"
        )
