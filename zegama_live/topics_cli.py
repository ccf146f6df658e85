"""``zegama-live topics``: print the declared topic list (the source of the broker's topics)."""

from __future__ import annotations

import argparse

from zegama_live.topics import TOPICS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    if args.json:
        import orjson

        rows = [
            {"name": t.name, "partitions": t.partitions, "key": t.key, "config": t.config}
            for t in TOPICS
        ]
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return 0
    for t in TOPICS:
        cfg = " ".join(f"{k}={v}" for k, v in sorted(t.config.items()))
        print(f"{t.name:<18} partitions={t.partitions:<2} key={t.key:<14} {cfg}")
    return 0
