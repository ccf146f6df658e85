"""The stream processors' settings (flag > environment variable > default).

Defaults are chosen for one broker and one or two workers on a 2-core machine; the
reasons are in docs/processors.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from zegama_live import config
from zegama_live.config import Option, SettingsError

__all__ = ["OPTIONS", "ProcessSettings", "SettingsError", "add_arguments", "load"]


def _paths(text: str) -> tuple[Path, ...]:
    return tuple(Path(p) for p in text.split(",") if p.strip())


@dataclass(frozen=True)
class ProcessSettings:
    """Everything a processor worker needs to run."""

    races: tuple[Path, ...] = (Path("races/zegama-2026"),)
    kafka_bootstrap: str = "127.0.0.1:9092"
    replication_factor: int = 0  # of the topics Faust makes itself; 0: as the cluster
    app_id: str = "zegama-live"
    data_dir: Path = Path("var/process")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    publish_ms: int = 50
    snapshot_every_s: float = 10.0
    tick_ms: int = 5_000
    track_step_m: float = 250.0
    card_every_ms: int = 2_000
    whole_every_ms: int = 120_000
    batch_max: int = 2_000
    batch_within_ms: int = 20
    fetch_wait_ms: int = 20
    commit_interval_s: float = 1.0
    flush_ms: int = 2_000
    standby_replicas: int = 0
    loglevel: str = "warn"

    def masked(self) -> dict[str, object]:
        """The effective settings as plain values (none of them is secret)."""
        return config.masked(self)


OPTIONS: tuple[Option, ...] = (
    Option("races", "ZEGAMA_RACES", "race folders, comma separated", _paths),
    Option("kafka_bootstrap", "ZEGAMA_KAFKA_BOOTSTRAP", "Kafka bootstrap servers: host:port, or a "
           "comma-separated list (a cluster)", config.parse_bootstrap),
    Option("replication_factor", "ZEGAMA_KAFKA_REPLICATION_FACTOR",
           "copies of the topics the worker creates (0: as the cluster, 3 from 3 brokers "
           "on, else 1; the declared and internal topics follow the same rule)", int),
    Option("app_id", "ZEGAMA_PROCESS_APP_ID",
           "consumer group and prefix of the internal topics", str),
    Option("data_dir", "ZEGAMA_PROCESS_DATA_DIR", "folder of this worker's RocksDB tables",
           Path),
    Option("web_host", "ZEGAMA_PROCESS_WEB_HOST", "address of /healthz and /metrics", str),
    Option("web_port", "ZEGAMA_PROCESS_WEB_PORT", "port of /healthz and /metrics", int),
    Option("publish_ms", "ZEGAMA_PROCESS_PUBLISH_MS",
           "publish changed standings and cards at most this often (ms)", int),
    Option("snapshot_every_s", "ZEGAMA_PROCESS_SNAPSHOT_EVERY_S",
           "a full standings snapshot at least this often (s)", float),
    Option("tick_ms", "ZEGAMA_PROCESS_TICK_MS",
           "evaluate the alert rules of the whole field this often (ms)", int),
    Option("track_step_m", "ZEGAMA_PROCESS_TRACK_STEP_M",
           "one race-flow point per this much progress (m)", float),
    Option("card_every_ms", "ZEGAMA_PROCESS_CARD_EVERY_MS",
           "publish a runner's card at most this often (ms); standings rows are live", int),
    Option("whole_every_ms", "ZEGAMA_PROCESS_WHOLE_EVERY_MS",
           "send a runner's whole progress curve to the per-race stage this often (ms); "
           "in between only what changed", int),
    Option("batch_max", "ZEGAMA_PROCESS_BATCH_MAX", "most input records in one batch", int),
    Option("batch_within_ms", "ZEGAMA_PROCESS_BATCH_WITHIN_MS",
           "longest wait to fill a batch (ms)", int),
    Option("fetch_wait_ms", "ZEGAMA_PROCESS_FETCH_WAIT_MS",
           "longest a fetch waits at the broker for new records (ms); new fixes can "
           "queue behind a fetch this long", int),
    Option("commit_interval_s", "ZEGAMA_PROCESS_COMMIT_INTERVAL_S",
           "how often consumed offsets are committed (s)", float),
    Option("flush_ms", "ZEGAMA_PROCESS_FLUSH_MS",
           "write changed runners to the tables this often; input is committed only "
           "once written, so at most this much is processed again after a crash (ms)", int),
    Option("standby_replicas", "ZEGAMA_PROCESS_STANDBY_REPLICAS",
           "standby copies of each table partition on other workers", int),
    Option("loglevel", "ZEGAMA_PROCESS_LOGLEVEL",
           "log level (crit, error, warn, info, debug)", str),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config.add_arguments(parser, OPTIONS, ProcessSettings())


def load(args: argparse.Namespace | None = None,
         environ: Mapping[str, str] | None = None) -> ProcessSettings:
    """The effective settings. Raises SettingsError naming what is wrong."""
    s = ProcessSettings(**config.load_values(OPTIONS, args, environ))
    if not s.races:
        raise SettingsError("no race folder: pass --races or set ZEGAMA_RACES")
    config.check_positive(s, ("publish_ms", "tick_ms", "batch_max", "batch_within_ms",
                              "flush_ms", "card_every_ms", "fetch_wait_ms"))
    config.check_ports(s, ("web_port",))
    return s
