"""``zegama-live broadcast``: serve the live pages, the websocket and the feed.

``--print-config`` prints the effective settings (keys and tokens masked) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from aiokafka.errors import KafkaError

from broadcast.app import Broadcaster
from broadcast.settings import BroadcastSettings, add_arguments, load
from zegama_live import service

log = logging.getLogger("broadcast")


def configure(parser: argparse.ArgumentParser) -> None:
    service.add_print_config(parser,
                             "print the effective settings (keys and tokens masked) and exit")
    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    service.configure_logging()
    settings = service.settings_or_status("broadcast", args, load)
    if isinstance(settings, int):
        return settings
    try:
        broadcaster = Broadcaster(settings)
    except ValueError as exc:
        return service.fail("broadcast", exc)
    try:
        asyncio.run(serve(broadcaster))
    except (KafkaError, OSError, RuntimeError) as exc:  # no broker, a port in use, no topics
        return service.fail("broadcast", f"cannot start: {exc} (Kafka at {settings.bootstrap}, "
                            f"ports {settings.http_port} and {settings.ws_port})", status=1)
    return 0


async def serve(broadcaster: Broadcaster, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or ``stop``), then close everything."""
    stop = service.stop_on_signals(stop)
    if not broadcaster.settings.control_tokens:
        log.warning("no race-control token (ZEGAMA_CONTROL_TOKENS): the control page cannot "
                    "connect")
    if not broadcaster.settings.origins:
        log.warning("the websocket accepts any Origin: set ZEGAMA_BROADCAST_ORIGINS to the "
                    "pages' origins (e.g. https://live.example.org) on a public address")
    try:
        await broadcaster.start()
        await stop.wait()
    finally:
        await broadcaster.stop()


__all__ = ["BroadcastSettings", "configure", "run", "serve"]
