"""The OsmAnd port: Traccar Client's requests, answered as Traccar answers them.

``200`` with an empty body when the fix is stored (Kafka acknowledged it; also for a
report without a position, lat 0 and lon 0, which is dropped as Traccar does), ``400`` for
a query-string fix of an unknown device or a fix that does not decode, ``404`` for a
JSON fix of an unknown device, ``401`` for a missing or wrong key, ``413`` for a body
over the limit and ``503`` with ``Retry-After`` when Kafka does not acknowledge. Error
bodies are one line of plain text a person can act on (the client ignores them).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from ingest import service as svc
from ingest.auth import credential
from ingest.encoding import BodyError, decode_body
from ingest.osmand import (
    CREDENTIAL_PARAMS,
    DecodedFix,
    decode_json,
    decode_query,
    json_device,
    query_device,
    query_params,
)
from ingest.producer import KafkaUnavailable
from race_engine.fixes import NO_POSITION, FixError

MAX_OSMAND_BODY = 64 * 1024
MALFORMED_JSON = "malformed_json"
MALFORMED_FORM = "malformed_form"


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers=headers)


async def handle(request: web.Request) -> web.Response:
    """One OsmAnd request: a query string, a POST form, or a Traccar Client 9 JSON body."""
    ingest = request.app[svc.INGEST_KEY]
    ingest.registry.maybe_reload()
    limit = min(ingest.settings.max_body_bytes, MAX_OSMAND_BODY)
    if request.content_length is not None and request.content_length > limit:
        return _refuse(ingest, "osmand", 413, svc.PAYLOAD_TOO_LARGE,
                       f"the body is larger than {limit} bytes")
    try:
        body = decode_body(await request.read(), request.headers.get("Content-Encoding"),
                           limit)
    except web.HTTPRequestEntityTooLarge:
        return _refuse(ingest, "osmand", 413, svc.PAYLOAD_TOO_LARGE,
                       f"the body is larger than {limit} bytes")
    except BodyError as exc:
        return _refuse(ingest, "osmand", exc.status, exc.reason, exc.message)
    except ConnectionResetError:  # a phone losing its network mid-upload: no one to answer
        return _refuse(ingest, "osmand", 400, svc.BODY_CUT_SHORT, svc.CUT_SHORT_MESSAGE)
    query = query_params(request.query.items())
    if request.content_type == "application/json" or body.lstrip()[:1] == b"{":
        return await _json(request, ingest, query, body)
    params = query
    if not set(query) - CREDENTIAL_PARAMS and body.strip():
        try:  # Traccar reads the body as a form when the URL carries no parameters
            params = {**query, **query_params(parse_qsl(body.decode("ascii"), strict_parsing=True))}
        except (UnicodeDecodeError, ValueError):
            return _refuse(ingest, "osmand", 400, MALFORMED_FORM,
                           "the body is not a form (id=...&lat=...&lon=...)")
    return await _query(request, ingest, params)


async def _query(request: web.Request, ingest: svc.Ingest, params: dict[str, str]
                 ) -> web.Response:
    return await _accept(
        request, ingest, "osmand", query_device(params), params,
        missing="missing 'id': set the device identifier in the tracker",
        unknown_status=400,  # Traccar answers a query from an unknown device with 400
        decode=lambda now: decode_query(params, now_ms=now, max_future_ms=ingest.max_future_ms),
    )


async def _json(request: web.Request, ingest: svc.Ingest, query: dict[str, str], body: bytes
                ) -> web.Response:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _refuse(ingest, "osmand-json", 400, MALFORMED_JSON,
                       f"the body is not valid JSON: {exc}")
    return await _accept(
        request, ingest, "osmand-json", json_device(obj), query,
        missing="missing 'device_id': set the device identifier in the tracker",
        unknown_status=404,  # ... and a JSON body from an unknown device with 404
        decode=lambda now: decode_json(obj, now_ms=now, max_future_ms=ingest.max_future_ms),
    )


async def _accept(request: web.Request, ingest: svc.Ingest, source: str, device: str | None,
                  key_params: dict[str, str], *, missing: str, unknown_status: int,
                  decode: Callable[[int], DecodedFix]) -> web.Response:
    """The path both OsmAnd forms share: device, key, bib, decode, store."""
    if device is None:
        return _refuse(ingest, source, 400, "bad_device", missing)
    denied = _check_key(request, ingest, source, device, key_params)
    if denied is not None:
        return denied
    bib = ingest.registry.bib_of(device)
    if bib is None:
        return _refuse(ingest, source, unknown_status, svc.UNKNOWN_DEVICE,
                       ingest.unknown_device_message(device))
    now = ingest.clock()
    try:
        decoded = decode(now)
    except FixError as exc:
        return _refuse(ingest, source, _status_of(exc), exc.reason, exc.message)
    return await _store(ingest, source, bib, decoded, now)


def _status_of(exc: FixError) -> int:
    """400, except 200 for a report without a position (lat 0, lon 0).

    Traccar answers 200 there too. Traccar Client resends a refused report before any
    newer one, so refusing a report that can never become valid would stop the phone
    reporting for the rest of the race; it is counted as rejected and not stored.
    """
    return 200 if exc.reason == NO_POSITION else 400


def _check_key(request: web.Request, ingest: svc.Ingest, source: str, device: str,
               params: dict[str, str]) -> web.Response | None:
    given = credential(request.headers, params)
    if ingest.auth.allows(given, device):
        return None
    if given is None:
        return _refuse(ingest, source, 401, svc.MISSING_KEY,
                       "missing key: add ?key=<device token or race key> to the server URL")
    return _refuse(ingest, source, 401, svc.BAD_KEY,
                   f"the key is not valid for device {device!r}: check the server URL's key")


async def _store(ingest: svc.Ingest, source: str, bib: str, decoded: DecodedFix, now: int
                 ) -> web.Response:
    message = ingest.ping_message(bib, decoded.fix, decoded.raw, source, now,
                                  decoded.speed, decoded.heading)
    try:
        await ingest.send([message])
    except KafkaUnavailable:
        return _refuse(ingest, source, 503, svc.KAFKA_UNAVAILABLE,
                       "not stored: the event store is unavailable, send the fix again later")
    ingest.metrics.fixes_accepted.labels(source).inc()
    return web.Response(status=200)


def _refuse(ingest: svc.Ingest, source: str, status: int, reason: str, message: str
            ) -> web.Response:
    ingest.metrics.fixes_rejected.labels(source, reason).inc()
    headers = ingest.retry_after() if status == 503 else None
    return _text(status, message, headers)
