"""``zegama-live process``: run one stream-processor worker (Faust).

Start more workers with the same ``--app-id`` (and each its own ``--data-dir`` and
``--web-port``) to share the partitions. ``--print-config`` prints the effective
settings and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import threading
from typing import Any

from race_engine.racefolder import RaceFolderError, load_race
from stream_processors.settings import add_arguments, load
from zegama_live import repeats, service


def configure(parser: argparse.ArgumentParser) -> None:
    service.add_print_config(parser)
    add_arguments(parser)


SHUTDOWN_GRACE_S = 15.0


def _exit_late() -> None:
    logging.getLogger("stream_processors").warning(
        "the worker did not stop within %.0f s of the signal (is Kafka away?): exiting "
        "now; the next worker reads again what was not committed", SHUTDOWN_GRACE_S)
    logging.shutdown()
    os._exit(1)


def run(args: argparse.Namespace) -> int:
    # No logging set-up here: the Faust worker configures logging at --loglevel.
    settings = service.settings_or_status("process", args, load)
    if isinstance(settings, int):
        return settings
    races = {}
    for folder in settings.races:
        try:
            race = load_race(folder)
        except RaceFolderError as exc:
            return service.fail("process", exc)
        races[race.id] = race
    from aiokafka.errors import KafkaError

    from stream_processors.bootstrap import BootstrapError, prepare

    try:
        asyncio.run(prepare(settings.kafka_bootstrap, settings.app_id))
        if not settings.replication_factor:  # as the cluster: 3 from 3 brokers on, else 1
            from zegama_live.kafka_local import replication_of

            rf, _ = asyncio.run(replication_of(settings.kafka_bootstrap))
            settings = dataclasses.replace(settings, replication_factor=rf)
    except (BootstrapError, KafkaError, OSError) as exc:
        return service.fail("process", exc)
    # Faust is imported here: it is heavy, and --help or a bad flag should not wait for it.
    from faust.worker import Worker

    from stream_processors.app import build_app

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(settings, races)
    class Quiet(Worker):  # type: ignore[misc]
        """Faust's worker, whose log handlers count repeated lines instead of writing them."""

        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            repeats.install(logger)

        def _schedule_shutdown(self, signal: Any) -> None:
            # With Kafka away, Faust's stop waits on commits and flushes that cannot
            # happen: exit after SHUTDOWN_GRACE_S instead of hanging until SIGKILL. That is
            # as safe as a crash, which loses nothing: input offsets are committed only
            # once the tables hold their effects.
            super()._schedule_shutdown(signal)
            watchdog = threading.Timer(SHUTDOWN_GRACE_S, _exit_late)
            watchdog.daemon = True
            watchdog.start()

    worker = Quiet(app, loglevel=settings.loglevel, redirect_stdouts=False)
    worker.execute_from_commandline()  # runs until SIGINT/SIGTERM, then stops cleanly
    return 0
