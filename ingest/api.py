"""The JSON APIs: ``POST /v1/pings`` (device batches) and ``POST /v1/chip-reads``.

Each item of a batch is judged on its own; the answer lists how many were accepted and,
for each refused item, its index and reason. ``202`` means Kafka acknowledged every
accepted item; ``503`` (with ``Retry-After``) means send the whole batch again.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from aiohttp import web

from ingest import service as svc
from ingest.auth import credential
from ingest.batch import Accepted, BatchError, Rejection, decode_fixes, decode_items, split_items
from ingest.chipreads import (
    UNKNOWN_BIB,
    UNKNOWN_CHECKPOINT,
    UNKNOWN_CHIP,
    ChipReadInput,
    decode_chip_read,
)
from ingest.encoding import BodyError, decode_body
from ingest.producer import KafkaUnavailable, Message
from race_engine.model import ChipRead

ALL_REJECTED = "all_rejected"


def error(status: int, reason: str, message: str, headers: dict[str, str] | None = None
          ) -> web.Response:
    """A JSON error answer: ``{"error": reason, "message": what to do}``."""
    body = orjson.dumps({"error": reason, "message": message})
    return web.Response(status=status, body=body, content_type="application/json",
                        headers=headers)


def answer(status: int, accepted: int, rejected: list[Rejection]) -> web.Response:
    body = orjson.dumps({"accepted": accepted, "rejected": [r.as_json() for r in rejected]})
    return web.Response(status=status, body=body, content_type="application/json")


async def read_body(request: web.Request, ingest: svc.Ingest, api: str) -> bytes | web.Response:
    """The request body decoded as its Content-Encoding says (ingest/encoding.py), or the
    answer refusing it: 413 over the size limit, 400 or 415 for its encoding."""
    limit = ingest.settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return too_large(ingest, api, limit)
    try:
        return decode_body(await request.read(), request.headers.get("Content-Encoding"),
                           limit)
    except web.HTTPRequestEntityTooLarge:
        return too_large(ingest, api, limit)
    except BodyError as exc:
        return refuse(ingest, api, exc.status, exc.reason, exc.message)
    except ConnectionResetError:  # a phone losing its network mid-upload: no one to answer
        return refuse(ingest, api, 400, svc.BODY_CUT_SHORT, svc.CUT_SHORT_MESSAGE)


def too_large(ingest: svc.Ingest, api: str, limit: int) -> web.Response:
    ingest.metrics.requests_rejected.labels(api, svc.PAYLOAD_TOO_LARGE).inc()
    return error(413, svc.PAYLOAD_TOO_LARGE,
                 f"the body is larger than {limit} bytes: split it into smaller batches")


def refuse(ingest: svc.Ingest, api: str, status: int, reason: str, message: str) -> web.Response:
    ingest.metrics.requests_rejected.labels(api, reason).inc()
    headers = ingest.retry_after() if status == 503 else None
    return error(status, reason, message, headers)


async def post_pings(request: web.Request) -> web.Response:
    ingest = request.app[svc.INGEST_KEY]
    ingest.registry.maybe_reload()
    given = credential(request.headers, request.query)
    if given is None and not ingest.auth.disabled:
        return refuse(ingest, "pings", 401, svc.MISSING_KEY,
                      "send 'Authorization: Bearer <race ingest key or device token>'")
    body = await read_body(request, ingest, "pings")
    if isinstance(body, web.Response):
        return body
    now = ingest.clock()
    try:
        result = decode_fixes(body, max_items=ingest.settings.max_batch, now_ms=now,
                              max_future_ms=ingest.max_future_ms)
    except BatchError as exc:
        status = 413 if exc.reason == "too_many_items" else 400
        return refuse(ingest, "pings", status, exc.reason, exc.message)
    ingest.metrics.batch_size.labels("pings").observe(len(result.accepted) + len(result.rejected))
    rejected = list(result.rejected)
    messages: list[Message] = []
    allowed_any = False
    race_wide = ingest.auth.race_wide(given)  # once per request, not per fix
    for item in result.accepted:
        fix = item.value
        if not (race_wide or ingest.auth.allows(given, fix.device)):
            rejected.append(Rejection(item.index, svc.NOT_YOUR_DEVICE,
                                      f"the key does not allow device {fix.device!r}"))
            continue
        allowed_any = True
        bib = ingest.registry.bib_of(fix.device)
        if bib is None:
            rejected.append(Rejection(item.index, svc.UNKNOWN_DEVICE,
                                      ingest.unknown_device_message(fix.device)))
            continue
        messages.append(ingest.ping_message(bib, fix, item.raw, "batch", now))
    if result.accepted and not allowed_any:
        return refuse(ingest, "pings", 401, svc.BAD_KEY,
                      "the key is neither the race ingest key nor the token of a device "
                      "in this batch: check the key configured in the tracker")
    rejected.sort(key=lambda r: r.index)
    for r in rejected:
        ingest.metrics.fixes_rejected.labels("batch", r.reason).inc()
    return await _deliver(ingest, "pings", messages, rejected,
                          lambda n: ingest.metrics.fixes_accepted.labels("batch").inc(n))


async def post_chip_reads(request: web.Request) -> web.Response:
    ingest = request.app[svc.INGEST_KEY]
    ingest.registry.maybe_reload()
    given = credential(request.headers, request.query)
    if not ingest.auth.race_wide(given):
        reason = svc.MISSING_KEY if given is None else svc.BAD_KEY
        return refuse(ingest, "chip-reads", 401, reason,
                      "chip reads need 'Authorization: Bearer <race ingest key>'")
    body = await read_body(request, ingest, "chip-reads")
    if isinstance(body, web.Response):
        return body
    now = ingest.clock()
    try:
        items = split_items(body, max_items=ingest.settings.max_batch)
    except BatchError as exc:
        status = 413 if exc.reason == "too_many_items" else 400
        return refuse(ingest, "chip-reads", status, exc.reason, exc.message)
    ingest.metrics.batch_size.labels("chip-reads").observe(len(items))
    result = decode_items(items, lambda obj: decode_chip_read(
        obj, now_ms=now, max_future_ms=ingest.max_future_ms))
    rejected = list(result.rejected)
    messages = []
    for item in result.accepted:
        resolved = _resolve_read(ingest, item)
        if isinstance(resolved, Rejection):
            rejected.append(resolved)
        else:
            messages.append(ingest.chip_message(resolved, item.value.chip, item.raw, now))
    rejected.sort(key=lambda r: r.index)
    for r in rejected:
        ingest.metrics.chip_reads_rejected.labels(r.reason).inc()
    return await _deliver(ingest, "chip-reads", messages, rejected,
                          ingest.metrics.chip_reads_accepted.inc)


def _resolve_read(ingest: svc.Ingest, item: Accepted[ChipReadInput]) -> ChipRead | Rejection:
    read = item.value
    if read.chip is not None:
        bib = ingest.registry.bib_of_chip(read.chip)
        if bib is None:
            return Rejection(item.index, UNKNOWN_CHIP,
                             f"chip {read.chip!r} is not in the chip column of entrants.csv")
    else:
        bib = read.bib or ""
        if not ingest.registry.has_bib(bib):
            return Rejection(item.index, UNKNOWN_BIB, f"bib {bib!r} is not an entrant of "
                             f"race {ingest.race}")
    if ingest.checkpoints is not None and read.checkpoint not in ingest.checkpoints:
        known = ", ".join(sorted(ingest.checkpoints))
        return Rejection(item.index, UNKNOWN_CHECKPOINT,
                         f"checkpoint {read.checkpoint!r} is not in race.toml (known: {known})")
    return ChipRead(bib=bib, checkpoint=read.checkpoint, t=read.t, reader=read.reader)


async def _deliver(ingest: svc.Ingest, api: str, messages: list[Message],
                   rejected: list[Rejection], count: Callable[[int], None]) -> web.Response:
    if not messages:
        ingest.metrics.requests_rejected.labels(api, ALL_REJECTED).inc()
        return answer(422, 0, rejected)
    try:
        await ingest.send(messages)
    except KafkaUnavailable:
        return refuse(ingest, api, 503, svc.KAFKA_UNAVAILABLE,
                      "the event store is not acknowledging right now; nothing of this request "
                      "is confirmed: send the same batch again after Retry-After seconds")
    count(len(messages))
    return answer(202, len(messages), rejected)
