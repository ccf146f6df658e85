"""``zegama-live kafka start|stop|status|topics``: the local single-node broker."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from zegama_live import kafka_local
from zegama_live.kafka_local import KafkaError, LocalKafka


def configure(parser: argparse.ArgumentParser) -> None:
    home = os.environ.get("ZEGAMA_KAFKA_HOME", str(kafka_local.DEFAULT_HOME))
    port = os.environ.get("ZEGAMA_KAFKA_PORT", str(kafka_local.DEFAULT_PORT))
    parser.add_argument("action", choices=["start", "stop", "status", "topics"])
    parser.add_argument(
        "--home", type=Path, default=Path(home),
        help="folder for the broker's data and logs (env ZEGAMA_KAFKA_HOME; default %(default)s)",
    )
    parser.add_argument(
        "--port", type=int, default=int(port),
        help="client port; the controller uses port+1 (env ZEGAMA_KAFKA_PORT; "
        "default %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    k = LocalKafka(home=args.home, port=args.port, controller_port=args.port + 1)
    try:
        if args.action == "start":
            print(kafka_local.start(k))
        elif args.action == "stop":
            print(kafka_local.stop(k))
        elif args.action == "status":
            message = kafka_local.status(k)
            print(message)
            return 0 if "answering" in message and "not" not in message else 1
        else:
            created = kafka_local.create_topics(k)
            print("created: " + (", ".join(created) or "none (all exist)"))
    except KafkaError as exc:
        print(f"error: {exc}")
        return 1
    return 0
