"""The plumbing against the real local broker: every declared topic carries a batch, and
a Faust worker (RocksDB table with changelog) processes messages end to end."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from zegama_live.topics import PINGS, RUNNER_UPDATES, TOPICS, runner_key

pytestmark = pytest.mark.integration


async def _consume(bootstrap: str, topic: str, marker: str, want: int,
                   timeout_s: float) -> list[tuple]:
    """Records of ``topic`` whose value starts with ``marker`` (other tests of the
    session write to the same topics), until ``want`` of them or the timeout."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None,
    )
    await consumer.start()
    got: list[tuple] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(got) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                got.extend((r.key, r.value, r.partition) for r in records
                           if r.value is not None and r.value.startswith(marker.encode()))
    finally:
        await consumer.stop()
    return got


async def test_declared_topics_exist_with_their_partitions(kafka_bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([t.name for t in TOPICS])
    finally:
        await admin.close()
    partitions = {d["topic"]: len(d["partitions"]) for d in described}
    assert partitions == {t.name: t.partitions for t in TOPICS}


@pytest.mark.parametrize("topic", [t.name for t in TOPICS])
async def test_a_batch_round_trips_through_every_topic(kafka_bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    marker = f"{topic}-{time.time_ns()}"
    try:
        sends = [
            await producer.send(topic, key=runner_key("probe", str(i % 7)),
                                value=f"{marker}:{i}".encode())
            for i in range(200)
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    got = await _consume(kafka_bootstrap, topic, marker, 200, timeout_s=20)
    mine = [(k, v.decode(), p) for k, v, p in got if v.decode().startswith(marker)]
    assert len(mine) == 200
    # one key -> one partition, and in the order produced
    by_key: dict[bytes, list[int]] = {}
    for key, value, partition in mine:
        by_key.setdefault(key, []).append(int(value.rsplit(":", 1)[1]))
        assert {p for k, _, p in mine if k == key} == {partition}
    for seq in by_key.values():
        assert seq == sorted(seq)


def test_a_faust_worker_processes_a_message_end_to_end(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    app = Path(__file__).with_name("faust_probe_app.py")
    env = {**os.environ, "ZEGAMA_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "PROBE_DATADIR": str(tmp_path / "faust")}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, str(app), "worker", "--loglevel", "warn"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        marker = f"faust-{time.time_ns()}".encode()
        key = b"probe:" + marker  # a key no other test wrote, so the count starts at 0

        async def wait_for_counts() -> list[bytes]:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                got = await _consume(kafka_bootstrap, RUNNER_UPDATES, "", 10**6, timeout_s=2)
                mine = [v for _, v, _ in got if v.startswith(marker)]
                if len(mine) == 3:
                    return mine
            log_text = (tmp_path / "worker.log").read_text()
            raise AssertionError("worker produced nothing:\n" + log_text)

        async def scenario() -> list[bytes]:
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
            await producer.start()
            try:
                for i in range(3):
                    await producer.send_and_wait(
                        PINGS, key=key, value=marker + b":" + str(i).encode()
                    )
            finally:
                await producer.stop()
            return await wait_for_counts()

        mine = asyncio.run(scenario())
        # the table counted per key, in order, through the RocksDB-backed table
        assert sorted(mine) == [marker + b":0|1", marker + b":1|2", marker + b":2|3"]
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
