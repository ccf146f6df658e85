"""The HTTP side: the two pages, their small API, /healthz, /metrics and the feed.

``GET /`` is the spectator page, ``GET /control`` the race-control page (both from
broadcast/static/), ``GET /api/v1/config`` tells the pages the websocket URL and the
races, ``GET /api/v1/races/{race}/course`` gives the course to draw.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from broadcast.course import course_payload, race_summary
from broadcast.feed import Feed
from broadcast.metrics import CONTENT_TYPE, BroadcastMetrics
from broadcast.settings import BroadcastSettings
from race_engine.model import Race
from zegama_live.http_errors import json_errors

STATIC = Path(__file__).resolve().parent / "static"


def build_http_app(settings: BroadcastSettings, races: dict[str, Race], feed: Feed,
                   metrics: BroadcastMetrics, ws_port: Callable[[], int],
                   health: Callable[[], dict[str, Any]]) -> web.Application:
    """The aiohttp application of the HTTP port."""
    courses = {rid: orjson.dumps(course_payload(race)) for rid, race in races.items()}
    summaries = [race_summary(race) for race in races.values()]

    async def page(request: web.Request, name: str) -> web.StreamResponse:
        path = STATIC / name
        if not path.is_file():
            return _json({"error": "not_found", "message": f"{name} is not installed in "
                          f"{STATIC}"}, 404)
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    async def index(request: web.Request) -> web.StreamResponse:
        return await page(request, "index.html")

    async def control(request: web.Request) -> web.StreamResponse:
        return await page(request, "control.html")

    async def config(request: web.Request) -> web.Response:
        scheme = "wss" if request.secure else "ws"
        try:
            host = request.url.host or settings.host
        except (ValueError, UnicodeError):  # a Host header that is no host[:port]
            host = settings.host
        url = settings.public_ws_url or f"{scheme}://{host}:{ws_port()}/"
        return _json({"ws_url": url, "ws_port": ws_port(), "races": summaries,
                      "heartbeat_s": settings.heartbeat_s, "tick_ms": settings.tick_ms},
                     headers={"Cache-Control": "no-cache"})

    async def course(request: web.Request) -> web.Response:
        race = request.match_info["race"]
        if race not in courses:
            return _json({"error": "not_found", "message": f"race {race!r} is not served "
                          f"here; races: {', '.join(courses)}"}, 404)
        return web.Response(body=courses[race], content_type="application/json",
                            headers={"Cache-Control": "public, max-age=300"})

    async def healthz(request: web.Request) -> web.Response:
        state = health()
        return _json(state, 200 if state["status"] == "ok" else 503,
                     headers={"Cache-Control": "no-store"})

    async def metrics_page(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/", index)
    app.router.add_get("/control", control)
    app.router.add_get("/api/v1/config", config)
    app.router.add_get("/api/v1/races/{race}/course", course)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    if STATIC.is_dir():
        app.router.add_static("/static", STATIC)
    feed.add_routes(app)
    return app


def _json(body: dict[str, Any], status: int = 200,
          headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers=headers,
                        content_type="application/json")
