"""Fixtures of the ingest unit tests: a race folder copy, a fake Kafka, test clients."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from ingest_fakes import ADMIN_KEY, DATA, DEVICE_SECRET, NOW_MS, RACE_KEY, FakeSink

from ingest.app import build_api_app, build_osmand_app
from ingest.devices import DeviceRegistry
from ingest.service import Ingest
from ingest.settings import IngestSettings


@pytest.fixture
def race_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "zegama-test"
    folder.mkdir()
    shutil.copy(DATA / "entrants.csv", folder / "entrants.csv")
    return folder


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
def ingest(race_dir: Path, sink: FakeSink) -> Ingest:
    settings = IngestSettings(
        race_dir=race_dir, ingest_key=RACE_KEY, admin_key=ADMIN_KEY,
        device_secret=DEVICE_SECRET, max_batch=50, max_body_bytes=20_000,
        reload_interval_s=0.0,
    )
    registry = DeviceRegistry(race_dir, reload_interval_s=0.0)
    registry.reload()
    return Ingest(settings, registry, sink, clock=lambda: NOW_MS,
                  checkpoints=frozenset({"otzaurte", "sancti-spiritu", "finish"}))


@pytest.fixture
async def api(ingest: Ingest) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_api_app(ingest))) as client:
        yield client


@pytest.fixture
async def osmand(ingest: Ingest) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_osmand_app(ingest))) as client:
        yield client
