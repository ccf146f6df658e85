"""The whole broadcaster over HTTP: pages, config, course, health, metrics, feed."""

from __future__ import annotations

import aiohttp
import pytest
from broadcast_kafka import FEED_KEY, produce, producer, running, settings_for, unique_race
from broadcast_records import RaceRecords

from broadcast.web import STATIC

pytestmark = pytest.mark.integration


async def test_pages_api_health_metrics_and_feed(kafka_bootstrap, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rr = RaceRecords(unique_race(tmp_path))
    ticks = rr.run()
    async with producer(kafka_bootstrap) as p:
        await produce(p, [rec for _ in range(10) for rec in next(ticks)])
    rid = rr.race.id
    async with running(settings_for(kafka_bootstrap, rr.race_dir)) as b, \
            aiohttp.ClientSession(f"http://127.0.0.1:{b.http_port}") as http:
        for path, page in (("/", "index.html"), ("/control", "control.html")):
            async with http.get(path) as resp:
                assert resp.status == 200
                assert await resp.read() == (STATIC / page).read_bytes()
        async with http.get("/api/v1/config") as resp:
            config = await resp.json()
        assert config["ws_url"] == f"ws://127.0.0.1:{b.ws_port}/"
        assert [r["id"] for r in config["races"]] == [rid]
        assert [c["id"] for c in config["races"][0]["checkpoints"]] == ["start", "top", "finish"]
        async with http.get(f"/api/v1/races/{rid}/course") as resp:
            course = await resp.json()
        assert [pt["dist_m"] for pt in course["points"]] == \
            [round(float(d), 1) for d in rr.race.course.dist]  # a short course is kept whole
        assert course["danger_zones"][0]["id"] == "top-ridge"
        assert course["checkpoints"][1]["cutoff_s"] == 1800
        async with http.get("/api/v1/races/nope/course") as resp:
            assert resp.status == 404 and "nope" in (await resp.json())["message"]
        async with http.get("/healthz") as resp:
            health = await resp.json()
        assert resp.status == 200 and health["status"] == "ok" and health["races"] == [rid]
        async with http.get(f"/feed/v1/races/{rid}/standings",
                            headers={"X-API-Key": FEED_KEY}) as resp:
            assert (await resp.json())["board"] == rr.board
        async with http.get("/metrics") as resp:
            text = await resp.text()
        for name in ("zegama_broadcast_connections", "zegama_broadcast_frames_sent_total",
                     "zegama_broadcast_dropped_updates_total", "zegama_broadcast_kafka_lag",
                     'zegama_broadcast_feed_requests_total{endpoint="standings",status="200"}'):
            assert name in text, name
