"""The worker's consumer fetches with the configured wait, not Faust's fixed 1.5 s.

The hook reaches into Faust's aiokafka driver and aiokafka's consumer (see
stream_processors/transport.py); this test fails when an upgrade of either moves it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
import pytest

from stream_processors import transport


def worker_consumer(tmp_path: Path, wait_ms: int | None) -> object:
    async def build() -> object:
        app = faust.App("fetch-wait-test", broker="kafka://127.0.0.1:1",
                        datadir=str(tmp_path), store="memory://")
        if wait_ms is not None:
            transport.install(app, wait_ms)
        app.Table("t", partitions=1, default=None)  # a worker's consumer, as ours has
        return app.consumer._thread._create_worker_consumer(app.transport)
    return asyncio.run(build())


def test_the_worker_consumer_fetches_with_the_configured_wait(tmp_path: Path) -> None:
    assert worker_consumer(tmp_path, 20)._fetch_max_wait_ms == 20  # type: ignore[attr-defined]


def test_without_it_faust_waits_1500_ms(tmp_path: Path) -> None:
    # What the hook exists for: if Faust makes the wait a setting, use that instead.
    assert worker_consumer(tmp_path, None)._fetch_max_wait_ms == 1500  # type: ignore[attr-defined]


def test_a_wait_below_one_ms_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 ms"):
        transport.transport_class(0)
