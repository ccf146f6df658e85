"""``zegama-live demo``: bring up the local platform and say what runs where.

Starts (or finds running) the local Kafka broker with the declared topics. Services
are added here as they are built; a second run finds everything already up and says so.
"""

from __future__ import annotations

import argparse

from zegama_live import kafka_local
from zegama_live.kafka_local import KafkaError, LocalKafka


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kafka-port", type=int, default=kafka_local.DEFAULT_PORT,
                        help="the local broker's client port (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    k = LocalKafka(port=args.kafka_port, controller_port=args.kafka_port + 1)
    try:
        print(kafka_local.start(k))
    except KafkaError as exc:
        print(f"error: {exc}")
        return 1
    print()
    print("Running:")
    print(f"  Kafka broker (KRaft, single node)  bootstrap {k.bootstrap}")
    print(f"    data and logs                    {k.home}")
    print("    topics                           zegama-live topics")
    print()
    print("Stop it with: zegama-live kafka stop   (or: make kafka-stop)")
    return 0
