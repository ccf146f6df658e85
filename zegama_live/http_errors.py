"""Answers for requests no route takes, as JSON like every other refusal of the APIs.

aiohttp answers an unknown path or a method a path does not take with its own plain
text ("404: Not Found"); a client reading ``{"error", "message"}`` everywhere else would
choke on it. The middleware turns those two into the same shape, naming what exists.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    routed = request.match_info.http_exception
    if routed is None:
        return await handler(request)
    path = request.path if len(request.path) <= 200 else request.path[:200] + "..."
    if routed.status == 405:
        allow = routed.headers.get("Allow", "")
        body = {"error": "method_not_allowed",
                "message": f"{path} does not take {request.method[:20]}; it takes {allow}"}
        headers = {"Allow": allow}
    else:
        body = {"error": "not_found", "message": f"nothing is served at {path}: check the "
                "path against the documentation (docs/ingest.md, docs/feed.md)"}
        headers = {}
    return web.Response(status=routed.status, body=orjson.dumps(body), headers=headers,
                        content_type="application/json")
