"""``zegama-live``: one command, a subcommand per process and tool.

Each subcommand lives in its own module, which provides ``configure(parser)`` to add
its arguments and ``run(args) -> int`` to do the work. Imports are lazy so that
``zegama-live --help`` stays fast and a tool does not load Faust or aiohttp unless it
needs them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module providing configure/run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "kafka": ("zegama_live.kafka_cli", "start, stop or inspect the local Apache Kafka broker"),
    "ingest": ("ingest.cli", "HTTP ingest of device fixes and chip reads into Kafka"),
    "process": ("stream_processors.cli", "the Faust worker: positions, splits, board, alerts"),
    "broadcast": ("broadcast.cli", "websocket fan-out, JSON feed and web pages"),
    "simulate": ("race_engine.simulate_cli", "write a simulated field's fixes and true splits"),
    "replay": ("race_engine.replay_cli", "run the engine over a file of fixes, offline"),
    "loadtest": ("loadtest.cli", "device fleet and spectator swarm against a running stack"),
    "demo": ("zegama_live.demo", "start everything and play a simulated race"),
    "topics": ("zegama_live.topics_cli", "print the declared Kafka topics"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zegama-live", description="Live race tracking for trail races."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # not built yet in this version
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
