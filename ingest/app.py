"""The two aiohttp applications of one ingest process, and its admin endpoints.

* the API port: ``POST /v1/pings``, ``POST /v1/chip-reads``, the admin endpoints,
  ``GET /healthz`` and ``GET /metrics``;
* the OsmAnd port: every path, ``GET`` or ``POST``, is an OsmAnd request (Traccar
  Client posts to the server URL as configured, path and all).

Both share one :class:`~ingest.service.Ingest` state; the Kafka producer is started and
stopped by ``ingest.cli``, not by the applications, because it serves both.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from ingest import api, osmand_http
from ingest import service as svc
from ingest.auth import credential, same_secret
from ingest.devices import RegistryError
from ingest.metrics import CONTENT_TYPE
from zegama_live.http_errors import json_errors

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(status: int, obj: object) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json")


def _in_flight(port: str) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        gauge = request.app[svc.INGEST_KEY].metrics.in_flight.labels(port)
        gauge.inc()
        try:
            return await handler(request)
        finally:
            gauge.dec()

    return middleware


async def healthz(request: web.Request) -> web.Response:
    """200 when Kafka is connected and entrants are loaded; 503 otherwise (and why)."""
    ingest = request.app[svc.INGEST_KEY]
    ingest.registry.maybe_reload()
    ready = ingest.sink.ready
    ingest.metrics.kafka_ready.set(1 if ready else 0)
    ingest.metrics.entrants.set(ingest.registry.size())
    body = {
        "status": "ok" if ready and ingest.registry.size() else "degraded",
        "race": ingest.race,
        "kafka": "up" if ready else "down",
        "kafka_error": "" if ready else getattr(ingest.sink, "last_error", ""),
        "entrants": ingest.registry.size(),
        "entrants_error": ingest.registry.last_error,
    }
    return _json(200 if body["status"] == "ok" else 503, body)


async def metrics(request: web.Request) -> web.Response:
    ingest = request.app[svc.INGEST_KEY]
    ingest.metrics.kafka_ready.set(1 if ingest.sink.ready else 0)
    ingest.metrics.entrants.set(ingest.registry.size())
    return web.Response(body=ingest.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


def _admin_denied(request: web.Request) -> web.Response | None:
    ingest = request.app[svc.INGEST_KEY]
    if ingest.settings.no_auth:
        return None
    key = ingest.settings.admin_key
    if not key:
        return api.error(403, "admin_disabled",
                         "admin endpoints are off: set ZEGAMA_INGEST_ADMIN_KEY to enable them")
    given = credential(request.headers, {})
    if given is None or not same_secret(given, key):
        return api.error(401, svc.BAD_KEY, "send 'Authorization: Bearer <admin key>'")
    return None


async def admin_reload(request: web.Request) -> web.Response:
    """Reload entrants.csv now; 422 (keeping the previous entrants) when it does not load."""
    denied = _admin_denied(request)
    if denied is not None:
        return denied
    ingest = request.app[svc.INGEST_KEY]
    try:
        count = ingest.registry.reload()
    except RegistryError as exc:
        return api.error(422, "entrants_invalid", f"{exc}; the previous entrants stay in use")
    ingest.metrics.entrants.set(count)
    return _json(200, {"entrants": count, "reassignments": ingest.registry.reassignments()})


async def admin_reassign(request: web.Request) -> web.Response:
    """Give a device to a bib: ``{"device": "ZGM-0413", "bib": "101"}`` (bib null: undo)."""
    denied = _admin_denied(request)
    if denied is not None:
        return denied
    ingest = request.app[svc.INGEST_KEY]
    try:
        obj = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        obj = None
    device, bib = (obj.get("device"), obj.get("bib")) if isinstance(obj, dict) else (None, None)
    if not isinstance(device, str) or not (bib is None or isinstance(bib, str)):
        return api.error(400, "bad_request",
                         'send {"device": "<device id>", "bib": "<bib>"} (bib null to undo)')
    try:
        ingest.registry.reassign(device, bib)
    except RegistryError as exc:
        return api.error(404 if bib is not None else 400, "bad_reassignment", str(exc))
    return _json(200, {"device": device.strip(), "bib": bib,
                       "reassignments": ingest.registry.reassignments()})


async def admin_devices(request: web.Request) -> web.Response:
    denied = _admin_denied(request)
    if denied is not None:
        return denied
    registry = request.app[svc.INGEST_KEY].registry
    return _json(200, {"entrants": registry.size(), "reassignments": registry.reassignments(),
                       "entrants_error": registry.last_error})


# Bodies are decompressed by ingest/encoding.py, which answers a bad one with a 400.
RAW_BODIES = {"auto_decompress": False}


def build_api_app(ingest: svc.Ingest) -> web.Application:
    """The API port's application."""
    app = web.Application(middlewares=[json_errors, _in_flight("api")],
                          client_max_size=ingest.settings.max_body_bytes,
                          handler_args=RAW_BODIES)
    app[svc.INGEST_KEY] = ingest
    app.router.add_post("/v1/pings", api.post_pings)
    app.router.add_post("/v1/chip-reads", api.post_chip_reads)
    app.router.add_post("/v1/admin/reload", admin_reload)
    app.router.add_post("/v1/admin/reassign", admin_reassign)
    app.router.add_get("/v1/admin/devices", admin_devices)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


def build_osmand_app(ingest: svc.Ingest) -> web.Application:
    """The OsmAnd port's application: every path is the OsmAnd endpoint."""
    app = web.Application(middlewares=[_in_flight("osmand")],
                          client_max_size=osmand_http.MAX_OSMAND_BODY,
                          handler_args=RAW_BODIES)
    app[svc.INGEST_KEY] = ingest
    app.router.add_route("GET", "/{tail:.*}", osmand_http.handle)
    app.router.add_route("POST", "/{tail:.*}", osmand_http.handle)
    return app
