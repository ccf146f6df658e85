"""Property-based fuzzing of both APIs: no input, however wrong, yields a 5xx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_fakes import DEVICE_SECRET, NOW_MS, RACE_KEY, FakeSink

from ingest.app import build_api_app, build_osmand_app
from ingest.auth import device_token
from ingest.devices import DeviceRegistry
from ingest.service import Ingest
from ingest.settings import IngestSettings

FUZZ = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
           | st.sampled_from([NOW_MS, NOW_MS / 1000, "2026-05-17T06:59:00Z", "0", "-1e400"]))
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=10), kids, max_size=4),
                           max_leaves=12)
devices = st.sampled_from(["ZGM-0001", "ZGM-0002", "902064", "unknown", "", " "]) | scalars
coords = st.floats() | st.integers(-1000, 1000) | st.text(max_size=8) | st.none()
fixes = st.fixed_dictionaries(
    {"device": devices, "ts": scalars, "lat": coords, "lon": coords},
    optional={"ele": coords, "acc": coords, "bat": coords, "sos": scalars, "x": json_values},
)
reads = st.fixed_dictionaries(
    {"checkpoint": st.sampled_from(["finish", "otzaurte", "", "nope"]) | scalars, "ts": scalars},
    optional={"bib": st.sampled_from(["101", "102", "999"]) | scalars,
              "chip": st.sampled_from(["E2001", "nope"]) | scalars, "reader": scalars},
)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()  # NaN and huge integers included, as clients may send


def bodies(items: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    as_array = st.lists(items | json_values, max_size=8).map(dumps)
    as_lines = st.lists(items, max_size=8).map(lambda xs: b"\n".join(dumps(x) for x in xs))
    return as_array | as_lines | st.binary(max_size=300) | json_values.map(dumps)


auths = st.sampled_from([
    {"Authorization": f"Bearer {RACE_KEY}"},
    {"Authorization": f"Bearer {device_token(DEVICE_SECRET, 'ZGM-0001')}"},
    {"Authorization": "Bearer wrong"}, {"Authorization": "Basic !!!"},
    {"Authorization": "Basic OnJhY2Uta2V5LWZvci10ZXN0cw=="}, {},
])


@dataclass
class Env:
    loop: asyncio.AbstractEventLoop
    api: TestClient
    osmand: TestClient

    def status(self, coro: Any) -> int:
        async def go() -> int:
            resp = await coro
            await resp.read()
            return int(resp.status)

        return self.loop.run_until_complete(go())


@pytest.fixture
def env(race_dir: Path) -> Iterator[Env]:
    settings_ = IngestSettings(race_dir=race_dir, ingest_key=RACE_KEY,
                               device_secret=DEVICE_SECRET, max_batch=6, max_body_bytes=4000)
    registry = DeviceRegistry(race_dir)
    registry.reload()
    ingest = Ingest(settings_, registry, FakeSink(), clock=lambda: NOW_MS,
                    checkpoints=frozenset({"finish", "otzaurte"}))
    loop = asyncio.new_event_loop()
    api = TestClient(TestServer(build_api_app(ingest)), loop=loop)
    osmand = TestClient(TestServer(build_osmand_app(ingest)), loop=loop)
    loop.run_until_complete(api.start_server())
    loop.run_until_complete(osmand.start_server())
    yield Env(loop, api, osmand)
    loop.run_until_complete(api.close())
    loop.run_until_complete(osmand.close())
    loop.close()


@FUZZ
@given(body=bodies(fixes), headers=auths)
def test_pings_never_answer_5xx(env: Env, body: bytes, headers: dict[str, str]) -> None:
    status = env.status(env.api.post("/v1/pings", data=body, headers=headers))
    assert status in {202, 400, 401, 413, 422}


@FUZZ
@given(body=bodies(reads), headers=auths)
def test_chip_reads_never_answer_5xx(env: Env, body: bytes, headers: dict[str, str]) -> None:
    status = env.status(env.api.post("/v1/chip-reads", data=body, headers=headers))
    assert status in {202, 400, 401, 413, 422}


osmand_keys = st.sampled_from(["id", "deviceid", "lat", "lon", "location", "timestamp", "speed",
                               "bearing", "heading", "altitude", "accuracy", "hdop", "batt",
                               "alarm", "key", "valid"]) | st.text(min_size=1, max_size=8)
osmand_values = (st.text(max_size=25) | st.sampled_from(
    ["ZGM-0001", "902064", "42.9", "-2.3", "42.9,-2.3", "1779001100", "1779001100000",
     "2026-05-17T06:59:00Z", "2026-05-17 06:59:00", "nan", "inf", "1e999", "sos", RACE_KEY])
    | st.floats().map(str))
osmand_params = st.dictionaries(osmand_keys, osmand_values, max_size=10)
traccar_json = st.fixed_dictionaries(
    {"device_id": devices, "location": st.fixed_dictionaries(
        {"timestamp": scalars, "coords": st.dictionaries(
            st.sampled_from(["latitude", "longitude", "accuracy", "speed", "heading",
                             "altitude"]), coords) | json_values},
        optional={"battery": json_values, "extras": json_values}) | json_values},
    optional={"battery": json_values, "alarm": scalars},
)


@FUZZ
@given(params=osmand_params, method=st.sampled_from(["GET", "POST", "FORM"]))
def test_osmand_query_never_answers_5xx(env: Env, params: dict[str, str], method: str) -> None:
    if method == "FORM":
        coro = env.osmand.post("/", data=urlencode(params).encode(),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    else:
        coro = env.osmand.request(method, "/", params=params)
    assert env.status(coro) in {200, 400, 401, 413}


@FUZZ
@given(obj=traccar_json | json_values, raw=st.binary(max_size=200), use_raw=st.booleans(),
       key=st.sampled_from([RACE_KEY, "wrong", ""]))
def test_osmand_json_never_answers_5xx(env: Env, obj: Any, raw: bytes, use_raw: bool,
                                       key: str) -> None:
    body = raw if use_raw else dumps(obj)
    coro = env.osmand.post("/", data=body, params={"key": key} if key else None,
                           headers={"Content-Type": "application/json"})
    assert env.status(coro) in {200, 400, 401, 404, 413}
