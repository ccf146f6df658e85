"""``zegama-live kafka start|stop|status|topics``: the local broker, or a local cluster."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from zegama_live import kafka_local
from zegama_live.kafka_local import KafkaError, LocalCluster, LocalKafka


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
    parser.add_argument(
        "--brokers", type=int, default=None, metavar="N",
        help="start a cluster of N nodes (broker and controller each) under HOME/node-1.., "
        "node n on port PORT+2(n-1); 3 or more replicate topics 3 times with "
        "min.insync.replicas 2. stop, status and topics find a cluster started in HOME "
        "by themselves. Default: 1 (one node in HOME)",
    )


def run(args: argparse.Namespace) -> int:
    cluster = kafka_local.cluster_in(args.home)
    if args.brokers is not None and args.brokers > 1:
        cluster = LocalCluster(home=args.home, port=args.port, brokers=args.brokers)
    elif args.brokers == 1:
        cluster = None
    elif args.brokers is not None:
        print("error: --brokers must be 1 or more")
        return 2
    try:
        if cluster is not None:
            return _cluster(args.action, cluster)
        k = LocalKafka(home=args.home, port=args.port, controller_port=args.port + 1)
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


def _cluster(action: str, c: LocalCluster) -> int:
    if action == "start":
        print(kafka_local.start_cluster(c))
        print(f"bootstrap servers: {c.bootstrap}")
    elif action == "stop":
        print(kafka_local.stop_cluster(c))
    elif action == "status":
        ok, lines = kafka_local.cluster_status(c)
        print(lines)
        return 0 if ok else 1
    else:
        created = kafka_local.create_topics(c)
        print("created: " + (", ".join(created) or "none (all exist)"))
    return 0
