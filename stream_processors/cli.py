"""``zegama-live process``: run one stream-processor worker (Faust).

Start more workers with the same ``--app-id`` (and each its own ``--data-dir`` and
``--web-port``) to share the partitions. ``--print-config`` prints the effective
settings and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from race_engine.racefolder import RaceFolderError, load_race
from stream_processors.settings import add_arguments, load
from zegama_live import repeats, service


def configure(parser: argparse.ArgumentParser) -> None:
    service.add_print_config(parser)
    add_arguments(parser)


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
    from stream_processors.bootstrap import BootstrapError, prepare

    try:
        asyncio.run(prepare(settings.kafka_bootstrap, settings.app_id))
    except BootstrapError as exc:
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

    worker = Quiet(app, loglevel=settings.loglevel, redirect_stdouts=False)
    worker.execute_from_commandline()  # runs until SIGINT/SIGTERM, then stops cleanly
    return 0
