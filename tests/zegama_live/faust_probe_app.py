"""A minimal Faust app for the plumbing test: counts pings per key in a RocksDB table
and forwards each ping, with its count, to runner-updates.v1.

Run as ``python faust_probe_app.py worker`` with ZEGAMA_KAFKA_BOOTSTRAP and
PROBE_DATADIR set."""

from __future__ import annotations

import os

import faust

app = faust.App(
    "plumbing-probe",
    broker=f"kafka://{os.environ['ZEGAMA_KAFKA_BOOTSTRAP']}",
    store="rocksdb://",
    datadir=os.environ["PROBE_DATADIR"],
    topic_partitions=6,
    web_enabled=False,
)
pings = app.topic("pings.v1", key_type=bytes, value_type=bytes, value_serializer="raw")
updates = app.topic("runner-updates.v1", key_type=bytes, value_type=bytes, value_serializer="raw")
counts = app.Table("probe-counts", default=int, partitions=6)


@app.agent(pings)
async def count(stream: faust.StreamT[bytes]) -> None:
    async for key, value in stream.items():
        counts[key] += 1
        await updates.send(key=key, value=value + b"|" + str(counts[key]).encode())


if __name__ == "__main__":
    app.main()
