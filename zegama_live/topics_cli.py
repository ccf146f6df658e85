"""``zegama-live topics``: print the declared topic list (the source of the broker's
topics), or the JSON Schema of one topic's records (``--schema NAME``)."""

from __future__ import annotations

import argparse
import sys

from zegama_live.topics import BY_NAME, TOPICS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--schema", metavar="TOPIC", choices=sorted(BY_NAME),
                        help="print the JSON Schema of TOPIC's records and exit")
    parser.add_argument("--openapi", action="store_true",
                        help="write the records' schemas into the feed's OpenAPI document "
                             "(docs/openapi/feed.json) and exit")
    parser.add_argument("--websocket", action="store_true",
                        help="write the websocket protocol's JSON Schema "
                             "(docs/websocket.schema.json) and exit")
    parser.add_argument("--kafkatopics", action="store_true",
                        help="write the topics as Strimzi KafkaTopic resources for a cluster "
                        "(deploy/k8s/base/kafka-topics.yaml) and exit")
    parser.add_argument("--js", action="store_true",
                        help="write the records' constants for the pages "
                             "(broadcast/static/js/records.js) and exit")


def run(args: argparse.Namespace) -> int:
    import orjson

    if args.openapi:
        from zegama_live.records.openapi import FEED_OPENAPI, write_feed_openapi

        write_feed_openapi()
        print(f"wrote {FEED_OPENAPI}")
        return 0
    if args.websocket:
        from zegama_live.records.websocket import WEBSOCKET_SCHEMA, write_schema

        write_schema()
        print(f"wrote {WEBSOCKET_SCHEMA}")
        return 0
    if args.kafkatopics:
        from zegama_live.manifests import KAFKA_TOPICS, kafka_topics, render

        KAFKA_TOPICS.write_text(render(kafka_topics()))
        print(f"wrote {KAFKA_TOPICS}")
        return 0
    if args.js:
        from zegama_live.records.js import PAGES_MODULE, module_text

        PAGES_MODULE.write_text(module_text())
        print(f"wrote {PAGES_MODULE}")
        return 0
    if args.schema:
        schema = BY_NAME[args.schema].codec.schema()
        sys.stdout.write(orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if args.json:
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
