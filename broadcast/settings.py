"""The broadcaster's settings: one frozen object, defaults in code.

Each setting has a command-line flag and an environment variable; the flag wins over
the variable, which wins over the default. This module is the only place that reads
the environment. Secrets (feed keys, control tokens) are never shown: not in ``repr``,
not in ``--print-config``, not in logs.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from zegama_live import config
from zegama_live.config import Option, SettingsError

__all__ = ["OPTIONS", "BroadcastSettings", "SettingsError", "add_arguments", "check", "load",
           "parse_credentials"]


@dataclass(frozen=True)
class BroadcastSettings:
    """Everything the broadcaster needs to run."""

    host: str = "127.0.0.1"
    http_port: int = 8080
    ws_port: int = 8765
    bootstrap: str = "localhost:9092"
    races: tuple[Path, ...] = ()
    feed_keys: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    control_tokens: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    public_ws_url: str = ""  # empty: ws://<the page's host>:<ws_port>/
    origins: tuple[str, ...] = ()  # browser Origins the websocket accepts; empty: any
    tick_ms: int = 100
    window_ms: int = 500  # standings windows: at most one standings update per window
    heartbeat_s: float = 15.0
    stale_after_s: float = 30.0  # a race's board with no standings record this long is stale
    slow_client_s: float = 10.0
    ws_send_buffer: int = 128 * 1024  # a client socket's send buffer (docs/broadcast.md); 0: OS's
    ws_write_limit: int = 64 * 1024  # bytes a client's transport may hold before it is skipped
    ws_writer: str = "frames"  # "frames": framed once, written to transports; "broadcast"
    resume_s: float = 60.0
    resume_frames: int = 256
    max_channels: int = 10_000
    feed_rate: float = 10.0
    feed_burst: int = 20
    publish_timeout_s: float = 10.0

    def masked(self) -> dict[str, object]:
        """The effective settings as plain values, secrets shown as ``name:***``."""
        return config.masked(self, SECRETS, _mask_credentials)


SECRETS = frozenset({"feed_keys", "control_tokens"})
WRITERS = ("frames", "broadcast")


def _mask_credentials(value: tuple[tuple[str, str], ...]) -> list[str]:
    return [f"{name}:***" for name, _ in value]


def _races(text: str) -> tuple[Path, ...]:
    return tuple(Path(p.strip()) for p in text.split(",") if p.strip())


def parse_credentials(text: str) -> tuple[tuple[str, str], ...]:
    """``"name:key,name2:key2"`` as ((name, key), ...).

    Raises ValueError naming the entry without a name or a secret, or a repeated name.
    """
    out: list[tuple[str, str]] = []
    for i, entry in enumerate(p.strip() for p in text.split(",")):
        if not entry:
            continue
        name, sep, secret = entry.partition(":")
        if not sep or not name.strip() or not secret.strip():
            raise ValueError(f"entry {i + 1} is not 'name:secret' "
                             "(write name:secret,name2:secret2)")
        if any(n == name.strip() for n, _ in out):
            raise ValueError(f"name {name.strip()!r} appears twice")
        out.append((name.strip(), secret.strip()))
    return tuple(out)


def parse_origins(text: str) -> tuple[str, ...]:
    """``"https://live.example.org,http://localhost:8080"`` as a tuple of origins.

    Raises ValueError naming an entry that is not scheme://host[:port].
    """
    out: list[str] = []
    for entry in (p.strip() for p in text.split(",")):
        if not entry:
            continue
        scheme, sep, rest = entry.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
            raise ValueError(f"{entry[:80]!r} is not an origin: write scheme://host[:port], "
                             "e.g. https://live.example.org (no path, no trailing slash)")
        out.append(entry.lower())
    return tuple(out)


OPTIONS: tuple[Option, ...] = (
    Option("host", "ZEGAMA_BROADCAST_HOST", "address to listen on (both ports)", str),
    Option("http_port", "ZEGAMA_BROADCAST_HTTP_PORT",
           "port of the pages, /api, /feed, /healthz, /metrics (0: any free port)", int),
    Option("ws_port", "ZEGAMA_BROADCAST_WS_PORT", "port of the websocket (0: any free port)", int),
    Option("bootstrap", "ZEGAMA_KAFKA_BOOTSTRAP", "Kafka bootstrap servers: host:port, or a "
           "comma-separated list (a cluster)", config.parse_bootstrap),
    Option("races", "ZEGAMA_RACES",
           "race folder to serve; repeat the flag, or comma-separate in the variable",
           _races, repeat=True, spelling="--race", metavar="DIR"),
    Option("feed_keys", "ZEGAMA_FEED_KEYS", "feed API keys 'name:key,...' (secret)",
           parse_credentials),
    Option("control_tokens", "ZEGAMA_CONTROL_TOKENS",
           "race-control tokens 'name:token,...' (secret); also feed keys with /alerts",
           parse_credentials),
    Option("public_ws_url", "ZEGAMA_BROADCAST_PUBLIC_WS_URL",
           "websocket URL the pages use, when behind a proxy (default ws://HOST:WS_PORT/)", str),
    Option("origins", "ZEGAMA_BROADCAST_ORIGINS",
           "browser Origins the websocket accepts, comma-separated (e.g. the pages' "
           "https://live.example.org); a request without Origin (not a browser) is always "
           "accepted; empty: any Origin", parse_origins),
    Option("tick_ms", "ZEGAMA_BROADCAST_TICK_MS", "fan-out tick: shortest time between two "
           "ticks; a tick runs as soon as records arrive (ms)", int),
    Option("window_ms", "ZEGAMA_BROADCAST_WINDOW_MS", "standings window: the standings "
           "records of one window of their clock go as one update (ms)", int),
    Option("heartbeat_s", "ZEGAMA_BROADCAST_HEARTBEAT_S", "heartbeat interval (s)", float),
    Option("stale_after_s", "ZEGAMA_BROADCAST_STALE_AFTER_S",
           "a race's board is stale when no standings record came for this long (the "
           "processors publish a snapshot every 10 s): the feed says stale: true and the "
           "heartbeats name it (s)", float),
    Option("slow_client_s", "ZEGAMA_BROADCAST_SLOW_CLIENT_S",
           "close a client (4008) whose oldest pending frame waited this long (s)", float),
    Option("ws_send_buffer", "ZEGAMA_BROADCAST_WS_SEND_BUFFER",
           "kernel send buffer per websocket client in bytes (0: OS default)", int),
    Option("ws_write_limit", "ZEGAMA_BROADCAST_WS_WRITE_LIMIT",
           "bytes a client's transport may hold unsent before its frames wait in its "
           "outbox instead", int),
    Option("ws_writer", "ZEGAMA_BROADCAST_WS_WRITER",
           "how frames are written: 'frames' (framed once per tick, to the transports) or "
           "'broadcast' (websockets' broadcast(), framed per client; to measure)", str),
    Option("resume_s", "ZEGAMA_BROADCAST_RESUME_S", "how long updates are kept for resume (s)",
           float),
    Option("resume_frames", "ZEGAMA_BROADCAST_RESUME_FRAMES",
           "most updates kept per channel for resume", int),
    Option("max_channels", "ZEGAMA_BROADCAST_MAX_CHANNELS",
           "most distinct channels served at once; a subscription that would add one "
           "more is refused (too_many_channels)", int),
    Option("feed_rate", "ZEGAMA_FEED_RATE", "feed requests per second per key (sustained)",
           float),
    Option("feed_burst", "ZEGAMA_FEED_BURST", "feed requests per key in a burst", int),
    Option("publish_timeout_s", "ZEGAMA_BROADCAST_PUBLISH_TIMEOUT_S",
           "longest wait for Kafka to take a race-control command (s)", float),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting; its help names the environment variable and default."""
    config.add_arguments(parser, OPTIONS, BroadcastSettings(), SECRETS)


def load(args: argparse.Namespace | None = None,
         environ: Mapping[str, str] | None = None) -> BroadcastSettings:
    """The effective settings from parsed flags and the environment.

    Raises SettingsError naming the flag or variable of a value that does not parse, or
    the setting that cannot be used.
    """
    settings = BroadcastSettings(**config.load_values(OPTIONS, args, environ, SECRETS))
    check(settings)
    return settings


def check(s: BroadcastSettings) -> None:
    """Raise SettingsError naming the first setting that cannot be used."""
    config.check_ports(s, ("http_port", "ws_port"))
    config.check_positive(s, ("tick_ms", "window_ms", "heartbeat_s", "slow_client_s", "resume_s",
                              "resume_frames", "max_channels", "feed_rate", "feed_burst",
                              "publish_timeout_s", "ws_write_limit"))
    if s.ws_writer not in WRITERS:
        raise SettingsError(f"ws_writer must be one of {', '.join(WRITERS)}, not {s.ws_writer!r}")
    if s.ws_send_buffer < 0:
        raise SettingsError("ws_send_buffer must be 0 (OS default) or a number of bytes")
    if not s.races:
        raise SettingsError("no race to serve: pass --race DIR (repeatable) or set ZEGAMA_RACES "
                            "to comma-separated race folders")
    for path in s.races:
        if not (path / "race.toml").is_file():
            raise SettingsError(f"race folder {path} has no race.toml: pass a folder such as "
                                "races/zegama-2026")
