"""Kafka alone: how late a plain aiokafka consumer sees fixes produced at a steady rate.

The floor under the processors' latency: starts a broker of its own (a temporary folder,
free ports), produces ``--rate`` records/s of about the size of a ping (acks=all, keyed
over 500 runners) for ``--seconds`` and prints p50/p99 of (time seen - time sent) at a
consumer in the same process. Run::

    .venv/bin/python benchmarks/kafka_lag.py --rate 2000 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zegama_live import kafka_local
from zegama_live.topics import PINGS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def measure(bootstrap: str, rate: int, seconds: float) -> list[float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(PINGS, bootstrap_servers=bootstrap, auto_offset_reset="latest")
    await producer.start()
    await consumer.start()
    lags: list[float] = []

    async def consume() -> None:
        async for msg in consumer:
            lags.append(time.time() * 1000 - orjson.loads(msg.value)["t"])

    task = asyncio.create_task(consume())
    try:
        await asyncio.sleep(2)  # the consumer's assignment
        start, sent = time.perf_counter(), 0
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(int(elapsed * rate) - sent):
                sent += 1
                value = orjson.dumps({"t": time.time() * 1000, "pad": "x" * 300})
                await producer.send(PINGS, key=str(sent % 500).encode(), value=value)
            await asyncio.sleep(0.01)
        await asyncio.sleep(3)
    finally:
        task.cancel()
        await producer.stop()
        await consumer.stop()
    return sorted(lags)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=2000, help="records per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="zegama-kafka-lag-"))
    broker = kafka_local.LocalKafka(home=home / "kafka", port=free_port(),
                                    controller_port=free_port())
    print(kafka_local.start(broker))
    try:
        kafka_local.create_topics(broker)
        lags = asyncio.run(measure(broker.bootstrap, args.rate, args.seconds))
    finally:
        print(kafka_local.stop(broker))
    if not lags:
        print("no record was consumed", file=sys.stderr)
        return 1
    n = len(lags)
    print(f"{args.rate} records/s for {args.seconds:.0f} s: {n} consumed, "
          f"p50 {lags[n // 2]:.1f} ms, p99 {lags[int(n * 0.99)]:.1f} ms, max {lags[-1]:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
