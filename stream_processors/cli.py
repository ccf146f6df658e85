"""``zegama-live process``: run one stream-processor worker (Faust).

Start more workers with the same ``--app-id`` (and each its own ``--data-dir`` and
``--web-port``) to share the partitions. ``--print-config`` prints the effective
settings and exits.
"""

from __future__ import annotations

import argparse
import sys

import orjson

from race_engine.racefolder import RaceFolderError, load_race
from stream_processors.settings import SettingsError, add_arguments, load


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--print-config", action="store_true",
                        help="print the effective settings and exit")
    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        settings = load(args)
    except SettingsError as exc:
        print(f"zegama-live process: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        sys.stdout.write(orjson.dumps(settings.masked(), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
        return 0
    races = {}
    for folder in settings.races:
        try:
            race = load_race(folder)
        except RaceFolderError as exc:
            print(f"zegama-live process: {exc}", file=sys.stderr)
            return 2
        races[race.id] = race
    # Faust is imported here: it is heavy, and --help or a bad flag should not wait for it.
    from faust.worker import Worker

    from stream_processors.app import build_app

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(settings, races)
    worker = Worker(app, loglevel=settings.loglevel, redirect_stdouts=False)
    worker.execute_from_commandline()  # runs until SIGINT/SIGTERM, then stops cleanly
    return 0
