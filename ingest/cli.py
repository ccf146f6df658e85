"""``zegama-live ingest``: run the ingest service (API port and OsmAnd port).

``--print-config`` prints the effective settings (secrets masked) and exits;
``--print-device-tokens`` prints each entrant's device token for the trackers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from aiohttp import web

from ingest.app import build_api_app, build_osmand_app
from ingest.auth import device_token
from ingest.control import ControlFollower
from ingest.devices import DeviceRegistry, RegistryError
from ingest.producer import KafkaSink
from ingest.service import Ingest
from ingest.settings import IngestSettings, add_arguments, load
from zegama_live import service

log = logging.getLogger("ingest")


def configure(parser: argparse.ArgumentParser) -> None:
    service.add_print_config(parser,
                             "print the effective settings (secrets masked) and exit")
    parser.add_argument("--print-device-tokens", action="store_true",
                        help="print 'device,bib,token' for every entrant and exit")
    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    service.configure_logging()
    settings = service.settings_or_status("ingest", args, load)
    if isinstance(settings, int):
        return settings
    registry = DeviceRegistry(settings.race_dir, reload_interval_s=settings.reload_interval_s)
    try:
        registry.reload()
    except RegistryError as exc:
        return service.fail("ingest", exc)
    if args.print_device_tokens:
        return _print_tokens(settings, registry)
    asyncio.run(serve(settings, registry))
    return 0


def _print_tokens(settings: IngestSettings, registry: DeviceRegistry) -> int:
    if not settings.device_secret:
        return service.fail("ingest",
                            "set ZEGAMA_INGEST_DEVICE_SECRET to derive device tokens")
    from race_engine.racefolder import load_entrants

    print("device,bib,token")
    for e in load_entrants(registry.entrants_file):
        if e.device:
            print(f"{e.device},{e.bib},{device_token(settings.device_secret, e.device)}")
    return 0


def race_checkpoints(settings: IngestSettings) -> frozenset[str] | None:
    """The checkpoint ids of race.toml, or None (any id accepted) when it does not load."""
    try:
        from race_engine.racefolder import load_race

        race = load_race(settings.race_dir)
    except Exception as exc:  # an unusable race.toml must not stop fixes coming in
        log.warning("checkpoint ids of chip reads not checked: %s", exc)
        return None
    return frozenset(cp.id for cp in race.checkpoints)


async def serve(settings: IngestSettings, registry: DeviceRegistry,
                stop: asyncio.Event | None = None) -> None:
    """Serve both ports until SIGINT/SIGTERM (or ``stop``), then flush Kafka and exit."""
    sink = KafkaSink(settings.kafka_bootstrap, ack_timeout_s=settings.ack_timeout_s)
    ingest = Ingest(settings, registry, sink, checkpoints=race_checkpoints(settings))
    if settings.no_auth:
        log.warning("authentication is off (--no-auth): anyone can send fixes")
    await sink.start()
    follower = None
    if not settings.ignore_control:
        follower = ControlFollower(settings.kafka_bootstrap, ingest.race, registry)
        await follower.start()
    runners = [web.AppRunner(build_api_app(ingest), access_log=None),
               web.AppRunner(build_osmand_app(ingest), access_log=None)]
    stop = service.stop_on_signals(stop)
    try:
        for runner, port in zip(runners, (settings.port, settings.osmand_port), strict=True):
            await runner.setup()
            await web.TCPSite(runner, settings.host, port).start()
        log.info("ingest of race %s: API on %s:%d, OsmAnd on %s:%d, Kafka %s",
                 settings.race, settings.host, settings.port, settings.host,
                 settings.osmand_port, settings.kafka_bootstrap)
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()  # stop taking requests before the last flush
        if follower is not None:
            await follower.stop()
        await sink.stop()
