"""The JSON feed for media and partners: ``/feed/v1/races/{race}/...`` (docs/feed.md).

Every response is the current state of one resource with the race ``seq`` it is at,
encoded once per change and served with a strong ETag (``If-None-Match`` gives 304)
and a Cache-Control a CDN can use. Callers send ``X-API-Key`` (a feed key, or a
race-control token, which alone opens ``/alerts``); each key has a token bucket.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from broadcast.credentials import Caller, Credentials
from broadcast.metrics import BroadcastMetrics
from broadcast.ratelimit import RateLimiter
from broadcast.views import RaceView

Json = dict[str, Any]
PUBLIC_CACHE = "public, max-age=1, stale-while-revalidate=5"
PRIVATE_CACHE = "private, no-cache"
OPENAPI = Path(__file__).resolve().parents[1] / "docs" / "openapi" / "feed.json"


class Feed:
    """The feed's handlers over the race views."""

    def __init__(self, views: dict[str, RaceView], credentials: Credentials,
                 limiter: RateLimiter, metrics: BroadcastMetrics,
                 ready: Callable[[], bool] = lambda: True,
                 lag: Callable[[], int] = lambda: 0,
                 stale: Callable[[], dict[str, int]] = dict) -> None:
        self.views = views
        self.stale = stale  # races whose board has not moved for a while -> age (s)
        self.ready = ready  # False until the views are rebuilt from Kafka: 503, not stale data
        self.lag = lag
        self.credentials = credentials
        self.limiter = limiter
        self.metrics = metrics
        self._cache: dict[tuple[str, ...], tuple[Any, bytes, str]] = {}

    def add_routes(self, app: web.Application) -> None:
        base = "/feed/v1/races/{race}"
        app.router.add_get(base + "/standings", self._standings)
        app.router.add_get(base + "/runners/{bib}", self._runner)
        app.router.add_get(base + "/checkpoints/{checkpoint}", self._checkpoint)
        app.router.add_get(base + "/flow", self._flow)
        app.router.add_get(base + "/alerts", self._alerts)
        app.router.add_get("/feed/v1/openapi.json", self._openapi)

    async def _openapi(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(OPENAPI, headers={"Content-Type": "application/json"})

    async def _standings(self, request: web.Request) -> web.Response:
        return self._serve(request, "standings", lambda v: (v.board.seq,), standings_body)

    async def _flow(self, request: web.Request) -> web.Response:
        return self._serve(request, "flow", lambda v: (v.runner_seq,), flow_body)

    async def _alerts(self, request: web.Request) -> web.Response:
        return self._serve(request, "alerts", lambda v: (v.control_seq,), alerts_body,
                           control=True)

    async def _runner(self, request: web.Request) -> web.Response:
        bib = request.match_info["bib"]

        def version(v: RaceView) -> tuple[int, ...]:
            if bib not in v.bibs:
                raise _NotFound(f"bib {bib!r} is not an entrant of {v.id}")
            held = v.runners.get(bib)
            return (held["seq"] if held else 0, v.board.seq)  # the card's rank is the board's

        return self._serve(request, "runner", version, lambda v: runner_body(v, bib), bib)

    async def _checkpoint(self, request: web.Request) -> web.Response:
        cid = request.match_info["checkpoint"]

        def version(v: RaceView) -> tuple[int, ...]:
            if cid not in v.checkpoint_ids:
                raise _NotFound(f"checkpoint {cid!r} is not one of {v.id}: use one of "
                                f"{', '.join(sorted(v.checkpoint_ids))}")
            return (v.board.seq,)

        return self._serve(request, "checkpoint", version, lambda v: checkpoint_body(v, cid), cid)

    def _serve(self, request: web.Request, endpoint: str,
               version: Callable[[RaceView], tuple[int, ...]], body: Callable[[RaceView], Json],
               ident: str = "", control: bool = False) -> web.Response:
        try:
            response = self._respond(request, endpoint, version, body, ident, control)
        except _Refused as exc:
            response = exc.response()
        self.metrics.feed.labels(endpoint, str(response.status)).inc()
        return response

    def _respond(self, request: web.Request, endpoint: str,
                 version: Callable[[RaceView], tuple[int, ...]], body: Callable[[RaceView], Json],
                 ident: str, control: bool) -> web.Response:
        caller = self._caller(request, control)
        wait = self.limiter.take(caller.name, time.monotonic())
        if wait > 0:
            raise _Refused(429, "rate_limited", f"more than {self.limiter.burst} requests in a "
                           f"burst or {self.limiter.rate:g}/s for key {caller.name!r}; retry "
                           "after the Retry-After seconds", {"Retry-After": str(math.ceil(wait))})
        if not self.ready():
            raise _Refused(503, "starting", "this broadcaster is still reading Kafka "
                           f"({self.lag()} records behind) and would answer with old or empty "
                           "data: retry after the Retry-After seconds", {"Retry-After": "1"})
        race = request.match_info["race"]
        view = self.views.get(race)
        if view is None:
            raise _NotFound(f"race {race!r} is not served here; races: {', '.join(self.views)}")
        key = (race, endpoint, ident)
        stale = race in self.stale()
        seq = (*version(view), stale)
        cached = self._cache.get(key)
        if cached is None or cached[0] != seq:
            # stale: no record from the processors for a while (they or Kafka are away),
            # so what this says may be old although it is the newest this server has.
            data = orjson.dumps({**body(view), "stale": stale})
            cached = (seq, data, '"' + hashlib.blake2b(data, digest_size=12).hexdigest() + '"')
            self._cache[key] = cached
        headers = {"ETag": cached[2], "Cache-Control": PRIVATE_CACHE if control else PUBLIC_CACHE,
                   "Vary": "X-API-Key"}
        if _matches(request.headers.get("If-None-Match"), cached[2]):
            return web.Response(status=304, headers=headers)
        return web.Response(body=cached[1], headers=headers, content_type="application/json")

    def _caller(self, request: web.Request, control: bool) -> Caller:
        key = request.headers.get("X-API-Key")
        if not key:
            raise _Refused(401, "missing_key", "send your feed key in the X-API-Key header; "
                           "ask the race organisers for one", {"WWW-Authenticate": "X-API-Key"})
        caller = self.credentials.feed_caller(key)
        if caller is None:
            raise _Refused(403, "bad_key", "this X-API-Key is not a valid feed key: check for "
                           "typos or ask the race organisers for a new one")
        if control and not caller.control:
            raise _Refused(403, "not_allowed", f"key {caller.name!r} may not read alerts: they "
                           "need a race-control token")
        return caller


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}

    def response(self) -> web.Response:
        return web.Response(status=self.status, headers={"Cache-Control": "no-store",
                                                         **self.headers},
                            body=orjson.dumps({"error": self.code, "message": str(self)}),
                            content_type="application/json")


class _NotFound(_Refused):
    def __init__(self, message: str) -> None:
        super().__init__(404, "not_found", message)


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in tags or ("W/" + etag) in tags


def standings_body(view: RaceView) -> Json:
    board = view.board.board
    return {"race": view.id, "seq": view.board.seq,
            "generated_ms": board.get("generated_ms") if board else None, "board": board}


def runner_body(view: RaceView, bib: str) -> Json:
    held = view.runners.get(bib) or {"seq": 0, "generated_ms": None, "card": None, "track": []}
    return {"race": view.id, "seq": held["seq"], "bib": bib, "generated_ms": held["generated_ms"],
            "card": view.card(bib), "track": held["track"]}


def checkpoint_body(view: RaceView, cid: str) -> Json:
    board = view.board.board or {}
    entry: Json = next((cp for cp in board.get("checkpoints", []) if cp["id"] == cid),
                 {"id": cid, "km": None, "splits": []})
    return {"race": view.id, "seq": view.board.seq, "generated_ms": board.get("generated_ms"),
            "checkpoint": entry}


def flow_body(view: RaceView) -> Json:
    return {"race": view.id, "seq": view.runner_seq,
            "runners": {bib: {"name": h["card"].get("name"), "status": h["card"].get("status"),
                              "track": h["track"]} for bib, h in view.runners.items()}}


def alerts_body(view: RaceView) -> Json:
    return {"race": view.id, "seq": view.control_seq, "alerts": view.open_alerts()}
