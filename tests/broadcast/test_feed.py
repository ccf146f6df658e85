"""The JSON feed: keys, ETag/304, rate limits, and every response as docs/openapi/feed.json
says. The views are fed the real engine's records directly (no Kafka needed here)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from broadcast_records import MINI, RaceRecords
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from broadcast.credentials import Credentials
from broadcast.feed import Feed
from broadcast.metrics import BroadcastMetrics
from broadcast.ratelimit import RateLimiter
from broadcast.views import RaceView

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi" / "feed.json"
SPEC = json.loads(SPEC_PATH.read_text())
REGISTRY = Registry().with_resource(
    "urn:feed", Resource.from_contents(SPEC, default_specification=DRAFT202012))
MEDIA, CONTROL = "k-media-0123456789", "t-control-0123456789"
PATHS = {"/feed/v1/races/mini/standings": "Standings", "/feed/v1/races/mini/runners/1": "Runner",
         "/feed/v1/races/mini/checkpoints/top": "Checkpoint", "/feed/v1/races/mini/flow": "Flow",
         "/feed/v1/races/mini/alerts": "Alerts"}


def validate(body: object, schema: str) -> None:
    """Raise ValidationError unless ``body`` is a ``schema`` of the OpenAPI document."""
    validator = Draft202012Validator({"$ref": f"urn:feed#/components/schemas/{schema}"},
                                     registry=REGISTRY)
    validator.validate(body)


def make_feed(rate: float = 1000.0, burst: int = 1000) -> tuple[Feed, RaceView, RaceRecords]:
    rr = RaceRecords(MINI)
    view = RaceView(rr.race)
    feed = Feed({"mini": view}, Credentials((("media", MEDIA),), (("maite", CONTROL),)),
                RateLimiter(rate, burst), BroadcastMetrics())
    return feed, view, rr


async def client_of(feed: Feed) -> TestClient:  # type: ignore[type-arg]
    app = web.Application()
    feed.add_routes(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def fed() -> AsyncIterator[tuple[TestClient, RaceView, RaceRecords]]:  # type: ignore[type-arg]
    feed, view, rr = make_feed()
    ticks = rr.run()
    for _ in range(60):
        for topic, _key, rec in next(ticks):
            view.apply(topic, rec)
    client = await client_of(feed)
    yield client, view, rr
    await client.close()


async def test_every_endpoint_answers_as_documented(fed) -> None:  # type: ignore[no-untyped-def]
    client, view, rr = fed
    for path, schema in PATHS.items():
        resp = await client.get(path, headers={"X-API-Key": CONTROL})
        assert resp.status == 200, path
        body = await resp.json()
        validate(body, schema)
        assert body["race"] == "mini" and body["seq"] > 0
        assert resp.headers["Cache-Control"].startswith("private" if "alerts" in path else "public")
    standings = await (await client.get("/feed/v1/races/mini/standings",
                                        headers={"X-API-Key": MEDIA})).json()
    assert standings["board"] == rr.board
    alerts = await (await client.get("/feed/v1/races/mini/alerts",
                                     headers={"X-API-Key": CONTROL})).json()
    assert alerts["alerts"] == view.open_alerts() and alerts["alerts"]


async def test_every_documented_path_is_served_and_every_route_documented(fed) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = fed
    routes = {r.resource.canonical for r in client.server.app.router.routes()
              if r.resource is not None}
    assert routes == set(SPEC["paths"])
    spec = await (await client.get("/feed/v1/openapi.json")).json()
    assert spec == SPEC


async def test_etag_gives_304_until_the_state_changes(fed) -> None:  # type: ignore[no-untyped-def]
    client, view, rr = fed
    path, key = "/feed/v1/races/mini/standings", {"X-API-Key": MEDIA}
    first = await client.get(path, headers=key)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    same = await client.get(path, headers={**key, "If-None-Match": etag})
    assert same.status == 304 and same.headers["ETag"] == etag and await same.read() == b""
    for topic, _key, rec in next(rr.run()):
        view.apply(topic, rec)
    changed = await client.get(path, headers={**key, "If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag


@pytest.mark.parametrize(("headers", "path", "status", "code"), [
    ({}, "/feed/v1/races/mini/standings", 401, "missing_key"),
    ({"X-API-Key": "wrong"}, "/feed/v1/races/mini/standings", 403, "bad_key"),
    ({"X-API-Key": "cl\xe9"}, "/feed/v1/races/mini/standings", 403, "bad_key"),  # not UTF-8
    ({"X-API-Key": MEDIA}, "/feed/v1/races/mini/alerts", 403, "not_allowed"),
    ({"X-API-Key": MEDIA}, "/feed/v1/races/other/standings", 404, "not_found"),
    ({"X-API-Key": MEDIA}, "/feed/v1/races/mini/runners/999", 404, "not_found"),
    ({"X-API-Key": MEDIA}, "/feed/v1/races/mini/checkpoints/summit", 404, "not_found"),
])
async def test_refusals_say_what_to_do(fed, headers, path, status, code) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = fed
    resp = await client.get(path, headers=headers)
    assert resp.status == status
    body = await resp.json()
    validate(body, "Error")
    assert body["error"] == code and len(body["message"]) > 20


async def test_a_key_over_its_rate_gets_429_with_retry_after() -> None:
    feed, _, _ = make_feed(rate=1.0, burst=3)
    client = await client_of(feed)
    try:
        statuses = [(await client.get("/feed/v1/races/mini/flow",
                                      headers={"X-API-Key": MEDIA})).status for _ in range(3)]
        limited = await client.get("/feed/v1/races/mini/flow", headers={"X-API-Key": MEDIA})
        other = await client.get("/feed/v1/races/mini/flow", headers={"X-API-Key": CONTROL})
        assert statuses == [200, 200, 200]
        assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
        validate(await limited.json(), "Error")
        assert other.status == 200  # buckets are per key
    finally:
        await client.close()


async def test_the_feed_answers_503_until_the_views_are_rebuilt() -> None:
    feed, view, rr = make_feed()
    caught_up = False
    feed.ready, feed.lag = (lambda: caught_up), (lambda: 1234)
    client = await client_of(feed)
    try:
        path, key = "/feed/v1/races/mini/standings", {"X-API-Key": MEDIA}
        resp = await client.get(path, headers=key)
        body = await resp.json()
        assert resp.status == 503 and resp.headers["Retry-After"] == "1"
        assert body["error"] == "starting" and "1234 records behind" in body["message"]
        for topic, _key, rec in next(rr.run()):
            view.apply(topic, rec)
        caught_up = True
        assert (await client.get(path, headers=key)).status == 200
    finally:
        await client.close()


async def test_a_board_that_has_not_moved_is_served_as_stale() -> None:
    feed, view, rr = make_feed()
    for topic, _key, rec in next(rr.run()):
        view.apply(topic, rec)
    stale: dict[str, int] = {}
    feed.stale = lambda: stale
    client = await client_of(feed)
    try:
        key = {"X-API-Key": MEDIA}
        for path in PATHS:
            headers = {**key, "X-API-Key": CONTROL} if path.endswith("/alerts") else key
            fresh = await client.get(path, headers=headers)
            assert (await fresh.json())["stale"] is False
            stale["mini"] = 45
            old = await client.get(path, headers={**headers,
                                                  "If-None-Match": fresh.headers["ETag"]})
            assert old.status == 200 and (await old.json())["stale"] is True, path
            validate(await old.json(), PATHS[path])
            stale.clear()
    finally:
        await client.close()
