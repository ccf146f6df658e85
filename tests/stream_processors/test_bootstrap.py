"""The worker's start-up against the broker: internal topics made, coordinator found."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from stream_processors.bootstrap import BootstrapError, prepare
from zegama_live.topics import internal_topics


async def _partitions(bootstrap: str, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()


@pytest.mark.integration
def test_prepare_creates_the_internal_topics_once_and_finds_the_coordinator(
        kafka_bootstrap: str) -> None:
    app_id = f"bootstrap-{uuid.uuid4().hex[:8]}"
    declared = internal_topics(app_id)
    created = asyncio.run(prepare(kafka_bootstrap, app_id, timeout_s=30))
    assert sorted(created) == sorted(t.name for t in declared)
    found = asyncio.run(_partitions(kafka_bootstrap, [t.name for t in declared]))
    assert found == {t.name: t.partitions for t in declared}
    assert asyncio.run(prepare(kafka_bootstrap, app_id, timeout_s=30)) == []


def test_prepare_names_a_broker_that_never_answers() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BootstrapError, match=rf"127\.0\.0\.1:{port}.*within 2 s"):
        asyncio.run(prepare(f"127.0.0.1:{port}", "nobody", timeout_s=2))
