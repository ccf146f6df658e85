"""``zegama-live broadcast``: serve the live pages, the websocket and the feed.

``--print-config`` prints the effective settings (keys and tokens masked) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

import orjson
from aiokafka.errors import KafkaError

from broadcast.app import Broadcaster
from broadcast.settings import BroadcastSettings, SettingsError, add_arguments, load

log = logging.getLogger("broadcast")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--print-config", action="store_true",
                        help="print the effective settings (keys and tokens masked) and exit")
    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load(args)
    except SettingsError as exc:
        print(f"zegama-live broadcast: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        sys.stdout.write(orjson.dumps(settings.masked(), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
        return 0
    try:
        broadcaster = Broadcaster(settings)
    except ValueError as exc:
        print(f"zegama-live broadcast: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(broadcaster))
    except (KafkaError, OSError, RuntimeError) as exc:  # no broker, a port in use, no topics
        print(f"zegama-live broadcast: cannot start: {exc} (Kafka at {settings.bootstrap}, "
              f"ports {settings.http_port} and {settings.ws_port})", file=sys.stderr)
        return 1
    return 0


async def serve(broadcaster: Broadcaster, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or ``stop``), then close everything."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if not broadcaster.settings.control_tokens:
        log.warning("no race-control token (ZEGAMA_CONTROL_TOKENS): the control page cannot "
                    "connect")
    try:
        await broadcaster.start()
        await stop.wait()
    finally:
        await broadcaster.stop()


__all__ = ["BroadcastSettings", "configure", "run", "serve"]
