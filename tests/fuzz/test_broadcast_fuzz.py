"""Fuzzing a real broadcaster (``zegama-live broadcast``, its own OS process, following
the session's Kafka broker, with a race's records in it) through every door it has:
the JSON feed (paths, X-API-Key, If-None-Match and other headers), HTTP itself, the
websocket (requests of every op, mutated; malformed frames; broken handshakes) and
race-control commands over a websocket holding a control token.

Whatever comes in: no 5xx; the feed answers only what docs/feed.md lists, every error
as ``{"error", "message"}``, and never serves data without a valid key; every websocket
request gets exactly the answer docs/websocket.md gives it (every message checked
against the protocol's records), a broken frame a close with a code, never an internal
error; no ERROR record or traceback in the process's log; the service still answers
/healthz; and its memory and connection gauges come back once the clients are gone.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import orjson
import pytest
import websockets
from broadcast_client import unbatched
from broadcast_kafka import produce, producer
from broadcast_records import RaceRecords
from fuzz_support import (
    Answer,
    Findings,
    Gen,
    Service,
    WsClose,
    cases,
    exchange,
    get,
    host_corpus,
    http_garbage,
    http_request,
    json_error_problem,
    metric,
    race_folder,
    rng_for,
    run_all,
    show,
    start_broadcast,
    unique,
    ws_frame,
    ws_raw,
)
from websockets.exceptions import ConnectionClosed

from zegama_live.records.control import OPS, fields_of
from zegama_live.records.websocket import decode_frame

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FEED_KEYS = {f"feed-key-{i:02d}-0123456789": f"media{i}" for i in range(20)}
TOKEN = "control-token-maite-0123456789"
Json = dict[str, Any]
ERROR_OF = {401: "missing_key", 403: ("bad_key", "not_allowed"), 404: "not_found",
            429: "rate_limited"}
FEED = {200, 304, 401, 403, 404, 429}
CHANNEL_KINDS = ("standings", "runner", "checkpoint", "flow", "control")
COMMAND_ERRORS = {"invalid_command", "not_subscribed", "publish_failed"}
RSS_BOUND_MIB = 24  # growth of the broadcaster's VmRSS over the whole module's fuzz


@dataclass
class Served:
    service: Service
    http: int
    ws: int
    race: str
    bibs: list[str]
    checkpoints: list[str]
    rss_start: int = 0
    etags: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.ws}/"


async def _produce(bootstrap: str, records: list[tuple[str, str, Json]]) -> None:
    async with producer(bootstrap) as p:
        await produce(p, records)


@pytest.fixture(scope="module")
def served(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("fuzz-broadcast")
    race = unique("fuzz-bc")
    folder = race_folder(tmp, race)
    rr = RaceRecords(folder)
    records = [r for tick in islice(rr.run(), 12) for r in tick]
    asyncio.run(_produce(bootstrap, records))
    env = {"ZEGAMA_FEED_KEYS": ",".join(f"{n}:{k}" for k, n in FEED_KEYS.items()),
           "ZEGAMA_CONTROL_TOKENS": f"maite:{TOKEN}"}
    service, http, ws = start_broadcast(tmp, bootstrap, [folder], env,
                                        ["--tick-ms", "50", "--resume-s", "2"])
    s = Served(service, http, ws, race, [e.bib for e in rr.race.entrants],
               [c.id for c in rr.race.checkpoints])
    try:
        for path in feed_paths(s):  # warm up every endpoint once, learn the ETags
            status, _ = get(f"http://127.0.0.1:{http}{path}",
                            headers={"X-API-Key": TOKEN})
            assert status == 200, (path, status, service.tail())
        s.rss_start = service.rss_kib()
        yield s
    finally:
        service.stop()


def feed_paths(s: Served) -> list[str]:
    base = f"/feed/v1/races/{s.race}"
    return [f"{base}/standings", f"{base}/flow", f"{base}/alerts", f"{base}/runners/1",
            f"{base}/checkpoints/top", "/feed/v1/openapi.json"]


# ------------------------------------------------------------------------ feed

SIMPLE = re.compile(r"^[A-Za-z0-9_~!$&'()*+,;=@-]+$")


def feed_case(g: Gen, s: Served) -> tuple[str, str, bytes, str | bytes | None, bool]:
    """(method, endpoint, request, key sent, routed: the path is one of the feed's)."""
    race = s.race if g.chance(0.8) else g.pick(["mini", "zegama-2026", s.race.upper(),
                                                s.race + "x", g.path_segment()])
    endpoint = g.pick(["standings", "flow", "alerts", "runners", "checkpoints", "openapi"])
    ident = ""
    if endpoint == "runners":
        ident = g.pick(s.bibs) if g.chance(0.7) else g.pick(["999", "0", "-1", "1.0", "01",
                                                              g.path_segment()])
    elif endpoint == "checkpoints":
        ident = g.pick(s.checkpoints) if g.chance(0.7) else g.pick(["moon", "TOP", "",
                                                                     g.path_segment()])
    segments = [race] + ([ident] if endpoint in ("runners", "checkpoints") else [])
    if endpoint == "openapi":
        path, segments = "/feed/v1/openapi.json", []
    elif ident or endpoint not in ("runners", "checkpoints"):
        path = f"/feed/v1/races/{race}/{endpoint}" + (f"/{ident}" if ident else "")
    else:
        path = f"/feed/v1/races/{race}/{endpoint}/"
    routed = all(SIMPLE.match(x) and "%" not in x for x in segments)
    if g.chance(0.15):
        path += "?" + g.query()
    method = g.pick(["GET"] * 16 + ["HEAD", "HEAD", "POST", "DELETE"])
    routed = routed and method in ("GET", "HEAD") and len(path) < 8000
    headers: list[tuple[str | bytes, str | bytes]] = []
    key: str | bytes | None = None
    r = g.rng.random()
    if r < 0.55:
        key = g.pick(list(FEED_KEYS))
    elif r < 0.7:
        key = TOKEN
    elif r < 0.8:
        key = None
    else:
        key = g.pick(["wrong", "", " ", TOKEN + " ", TOKEN.upper(), "x" * 4000,
                      g.text(12), b"\xff" + TOKEN.encode(), g.header_value()])
    if key is not None:
        headers.append(("X-API-Key", clean(key)))
        if g.chance(0.05):
            headers.append(("X-API-Key", g.pick([TOKEN, "wrong"])))
    if g.chance(0.45):
        known = s.etags.get(path.split("?")[0], '"0"')
        headers.append(("If-None-Match", clean(g.pick([
            known, known, "W/" + known, "*", f'"x", {known}', ", ".join([known] * 200),
            '"' + "f" * 24 + '"', "", g.header_value(), known[1:-1], known + ","]))))
    for name in g.rng.sample(["Accept", "Accept-Encoding", "Range", "Cookie", "Origin",
                              "If-Modified-Since", "Cache-Control", "Content-Type"],
                             g.rng.randint(0, 3)):
        headers.append((name, clean(g.header_value())))
    body = g.rng.randbytes(g.rng.randint(0, 64)) if method in ("POST", "DELETE") else b""
    sent = key if key is None else clean(key)
    return method, endpoint, http_request(method, path[:9000], headers, body), sent, routed


def clean(value: str | bytes) -> str | bytes:
    """No control characters (those belong to HTTP's own fuzz)."""
    if isinstance(value, bytes):
        return bytes(b for b in value if b >= 0x20 and b != 0x7F)
    return "".join(c for c in value if c >= " " and c != "\x7f")


def is_framework_answer(a: Answer) -> bool:
    return a.status in (404, 405) and a.body.startswith((b"404: Not Found",
                                                         b"405: Method Not Allowed"))


def check_feed(f: Findings, i: int, s: Served, case: tuple[str, str, bytes, Any, bool],
               a: Answer) -> None:
    method, endpoint, request, key, routed = case
    where = f"case {i}: {show(request)}\n  -> {a.brief()}"
    if a.status is None:
        f.add("feed: no answer", where)
        return
    if a.status >= 500:
        f.add(f"feed {endpoint}: {a.status}", where)
        return
    if not routed:
        return  # what the router answers a path that is not the feed's: the unrouted test
    if endpoint == "openapi":  # a static file: Range requests are answered as HTTP says
        if a.status not in (200, 206, 304, 416):
            f.add(f"feed openapi: status {a.status}", where)
        return
    if is_framework_answer(a):
        f.add(f"feed {endpoint}: a feed path not routed ({a.status})", where)
        return
    if a.status not in FEED:
        f.add(f"feed {endpoint}: status {a.status} is not one docs/feed.md lists", where)
        return
    key = key.strip(b" \t" if isinstance(key, bytes) else " \t") if key is not None else None
    valid_key = key in FEED_KEYS or key == TOKEN  # HTTP strips spaces around a value
    if endpoint != "openapi" and a.status in (200, 304) and not valid_key:
        f.add(f"feed {endpoint}: served without a valid key", where)
    if endpoint == "alerts" and a.status in (200, 304) and key != TOKEN:
        f.add("feed alerts: served to a key that is not a race-control token", where)
    if a.status in (200, 304) and endpoint != "openapi" and not a.header("etag"):
        f.add(f"feed {endpoint}: {a.status} without an ETag", where)
    if a.status == 304 and a.body:
        f.add(f"feed {endpoint}: a 304 with a body", where)
    if a.status == 429 and not (a.header("retry-after") or "").isdigit():
        f.add("feed: a 429 without Retry-After in whole seconds", where)
    if method == "HEAD":
        return
    if a.status == 200:
        try:
            body = orjson.loads(a.body)
            assert isinstance(body, dict)
            if endpoint != "openapi":
                assert body["race"] == s.race and isinstance(body["seq"], int)
        except (orjson.JSONDecodeError, AssertionError, KeyError):
            f.add(f"feed {endpoint}: a 200 that is not its JSON document", where)
    elif a.status >= 400:
        problem = json_error_problem(a)
        if problem:
            f.add(f"feed {endpoint}: {a.status} error answer: {problem}", where)
        else:
            code = orjson.loads(a.body)["error"]
            want = ERROR_OF.get(a.status, ())
            if code not in (want if isinstance(want, tuple) else (want,)):
                f.add(f"feed: a {a.status} with error {code!r}", where)


async def ws_still_serving(f: Findings, s: Served) -> None:
    status, body = await asyncio.to_thread(get, f"http://127.0.0.1:{s.http}/healthz")
    if status != 200:
        f.add("/healthz after the fuzz", f"{status} {body[:300]!r}")
    try:
        async with websockets.connect(s.url, open_timeout=10) as ws:
            await ws.send('{"op": "ping"}')
            answer = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        if answer.get("type") != "pong":
            f.add("the websocket after the fuzz", repr(answer))
    except Exception as exc:  # any failure to talk is the finding
        f.add("the websocket after the fuzz", repr(exc))


async def test_feed_answers_every_request_as_documented(served: Served) -> None:
    """Feed paths with right and wrong races, bibs and checkpoints; right, wrong,
    broken and missing keys; ETags, garbage and long lists in If-None-Match; odd
    headers and methods: no 5xx, only docs/feed.md's answers, each error
    ``{"error", "message"}`` with its code, data only for a valid key (alerts only for
    a race-control token), an ETag on every 200 and 304."""
    s, mark = served, served.service.mark()
    f = Findings("test_feed_answers_every_request_as_documented")
    for path in feed_paths(s):
        status, _ = await asyncio.to_thread(get, f"http://127.0.0.1:{s.http}{path}")
        assert status in (200, 401), (path, status)
    for path in feed_paths(s)[:-1]:
        a = await exchange(s.http, http_request("GET", path, [("X-API-Key", TOKEN)]))
        s.etags[path] = a.header("etag") or '"none"'
    g = Gen(rng_for("feed"))
    items = [feed_case(g, s) for _ in range(cases(800))]

    async def one(i: int, case: tuple[str, str, bytes, Any, bool]) -> None:
        check_feed(f, i, s, case, await exchange(s.http, case[2]))

    await run_all(items, one)
    await ws_still_serving(f, s)
    f.check(s.service, mark)


async def test_feed_answers_unrouted_requests_with_json_errors(served: Served) -> None:
    """A wrong path or method under /feed/v1/ is an error like the feed's others:
    4xx with ``{"error", "message"}`` (docs/feed.md: every error body is one)."""
    s, mark = served, served.service.mark()
    f = Findings("test_feed_answers_unrouted_requests_with_json_errors")
    base = f"/feed/v1/races/{s.race}"
    g = Gen(rng_for("feed-unrouted"))
    items = [("GET", f"{base}/standings/"), ("GET", base), ("GET", f"{base}/"),
             ("GET", f"{base}/runners"), ("GET", f"{base}/runners/1/track"),
             ("GET", f"{base}/nope"), ("GET", "/feed/v1/races"), ("GET", "/feed/v1/"),
             ("GET", "/feed/v2/races/x/standings"), ("POST", f"{base}/standings"),
             ("PUT", f"{base}/alerts"), ("DELETE", f"{base}/runners/1"),
             ("POST", "/feed/v1/openapi.json"), ("GET", "/feed/v1/races//standings")]
    items += [("GET", f"{base}/{g.path_segment()[:100]}/{g.path_segment()[:100]}")
              for _ in range(cases(10))]

    async def one(i: int, item: tuple[str, str]) -> None:
        method, path = item
        a = await exchange(s.http, http_request(method, path, [("X-API-Key", TOKEN)]))
        where = f"{method} {path[:120]} -> {a.brief()}"
        if a.status is None or a.status >= 500:
            f.add("unrouted feed request: no answer or 5xx", where)
        elif a.status < 400:
            f.add("unrouted feed request served", where)
        elif problem := json_error_problem(a):
            f.add(f"unrouted feed request's {a.status} error answer: {problem}", where)

    await run_all(items, one)
    f.check(s.service, mark)


async def test_broken_http_and_handshakes_never_get_a_5xx(served: Served) -> None:
    """HTTP that breaks HTTP on the HTTP port (pages, feed, static files, metrics; Host
    headers no URL can be built from) and broken websocket handshakes on the websocket
    port: an answer below 500 or the connection closed, never a hang; no file outside
    the static folder is served."""
    s, mark = served, served.service.mark()
    f = Findings("test_broken_http_and_handshakes_never_get_a_5xx")
    g = Gen(rng_for("broadcast-http"))
    routes = ["/", "/control", "/api/v1/config", f"/api/v1/races/{s.race}/course",
              "/healthz", "/metrics", "/static/app.js", f"/feed/v1/races/{s.race}/standings"]
    items: list[tuple[int, bytes, bool]] = [(s.http, *http_garbage(g, routes))
                                            for _ in range(cases(120))]
    for target in ["/static/../pyproject.toml", "/static/%2e%2e/%2e%2e/pyproject.toml",
                   "/static/..%2f..%2fpyproject.toml", "/static//etc/passwd",
                   "/static/%00", "/static/" + "%ff" * 10, "/static/.", "/static/~"]:
        items.append((s.http, http_request("GET", target), False))
    items += [(s.http, request, False) for request in host_corpus(routes)]
    for _ in range(cases(60)):
        items.append((s.ws, *handshake_case(g)))
    upgrade = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]
    for version in (b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9"):
        items.append((s.ws, http_request("GET", "/", upgrade, version=version), False))
        items.append((s.ws, http_request("GET", "/", version=version), False))

    async def one(i: int, item: tuple[int, bytes, bool]) -> None:
        port, request, eof = item
        a = await exchange(port, request, eof=eof, timeout=15)
        where = f"case {i} ({'HTTP' if port == s.http else 'websocket'} port): " \
                f"{show(request)}\n  -> {a.brief()}"
        if a.status is not None and a.status >= 500:
            f.add(f"broken HTTP answered {a.status}", where)
        elif a.status is None and "within" in a.note:
            f.add("broken HTTP left hanging: neither answered nor closed", where)
        elif a.status == 200 and (b"[project]" in a.body or b"root:x:0:0" in a.body):
            f.add("a file outside the static folder was served", where)

    await run_all(items, one)
    await ws_still_serving(f, s)
    f.check(s.service, mark)


def handshake_case(g: Gen) -> tuple[bytes, bool]:
    """A websocket opening handshake with something wrong, or plain broken HTTP."""
    if g.chance(0.3):
        return http_garbage(g, ["/"])
    headers: list[tuple[str | bytes, str | bytes]] = [
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]
    for _ in range(g.rng.randint(1, 3)):
        i = g.rng.randrange(len(headers))
        r = g.rng.random()
        if r < 0.3:
            del headers[i]
        elif r < 0.7:
            headers[i] = (headers[i][0], clean(g.pick([
                "", "h2c", "websocket, h2c", "13, 8", "8", "99999999999", "AAAA", "=" * 30,
                g.header_value(), "Keep-Alive", "upgrade, close"])))
        if not headers:
            break
    for name in g.rng.sample(["Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol", "Origin",
                              "Sec-WebSocket-Accept"], g.rng.randint(0, 2)):
        headers.append((name, clean(g.pick([
            "permessage-deflate; client_max_window_bits=99", "permessage-deflate;;;", "x" * 5000,
            "null", "https://evil.example", g.header_value(), "chat, , ,"]))))
    method = g.pick(["GET"] * 6 + ["POST", "HEAD", "OPTIONS"])
    target = g.pick(["/", "/", "/?x=1", "/ws", "*", "/" + g.path_segment()])
    return http_request(method, target, headers), False


# ------------------------------------------------------------------- websocket

def channel_name(g: Gen, s: Served) -> Any:
    r = g.rng.random()
    if r < 0.55:
        kind = g.pick(CHANNEL_KINDS)
        if kind == "runner":
            return f"runner:{s.race}:{g.pick(s.bibs) if g.chance(0.8) else g.text(4)}"
        if kind == "checkpoint":
            cid = g.pick(s.checkpoints) if g.chance(0.8) else g.text(4)
            return f"checkpoint:{s.race}:{cid}"
        return f"{kind}:{s.race}"
    if r < 0.85:
        return g.pick([f"standings:{s.race}:x", f"standings:{g.text(6)}", "standings:",
                       ":" + s.race, f"runner:{s.race}", f"runner:{s.race}:1:2",
                       f"STANDINGS:{s.race}",
                       f"flow:{s.race} ", f"{g.text(6)}:{s.race}", "", ":", "::", g.text(20),
                       f"standings:{s.race}" + "x" * g.pick([100, 5000, 40_000]),
                       f"control:{s.race.upper()}", f"runner:{s.race}:" + "9" * 400])
    return g.wrong("standings:" + s.race)


def ws_request(g: Gen, s: Served) -> str | bytes:
    """One client frame: a request of any op, mutated, or noise (bytes: a binary frame)."""
    r = g.rng.random()
    if r < 0.4:
        msg: Any = {"op": "subscribe", "channel": channel_name(g, s)}
        if g.chance(0.3):
            msg["since"] = g.pick([0, 1, 50, 101, 10**6, -1, 2**63 - 1, 2**64, g.wrong(0)])
        if g.chance(0.3):
            msg["top"] = g.pick([1, 10, 500, 0, 501, -1, 2**70, g.wrong(10)])
        if g.chance(0.2) or str(msg["channel"]).startswith("control"):
            msg["token"] = g.pick([TOKEN, TOKEN, "wrong", "", None, 7, [TOKEN], g.text(8),
                                   TOKEN + "\u0000", g.pick(list(FEED_KEYS))])
        if g.chance(0.2):
            msg = g.mutate(msg)
    elif r < 0.52:
        msg = {"op": "unsubscribe", "channel": channel_name(g, s)}
        if g.chance(0.2):
            msg = g.mutate(msg)
    elif r < 0.6:
        msg = {"op": "ping"} if g.chance(0.7) else g.mutate({"op": "ping", "x": 1})
    elif r < 0.66:
        msg = {"op": "command", "race": s.race, "command": {"op": "dnf", "bib": "1"}}
        msg = g.mutate(msg) if g.chance(0.5) else msg
    elif r < 0.76:
        msg = g.pick([g.value(3), {"op": g.wrong("ping")}, {"op": g.text(8)}, {}])
    elif r < 0.86:
        text = g.garble(orjson.dumps({"op": "subscribe", "channel": f"standings:{s.race}",
                                      "top": 5}))
        return text.decode(errors="replace")
    elif r < 0.92:
        return g.pick([g.rng.randbytes(g.rng.randint(0, 40)), b'{"op": "ping"}', b""])
    elif r < 0.96:
        return g.pick([g.nested(300).decode(), g.nested(2000).decode(), "", " ", "\u0000",
                       "[" * 100_000, '{"op": "ping", "pad": "' + "x" * 70_000 + '"}'])
    else:
        msg = {"op": "ping", "t": [g.number() for _ in range(5)]}
    try:
        return g.dumps(msg).decode("utf-8")
    except UnicodeDecodeError:  # a lone surrogate: the client library sends text as UTF-8
        return orjson.dumps(str(msg)).decode()


def ws_corpus(s: Served) -> list[str | bytes]:
    """Requests always sent, before the random ones (see command_corpus)."""
    std = f"standings:{s.race}"
    messages: list[Any] = [
        {"op": "subscribe", "channel": ["x"]}, {"op": "subscribe", "channel": {"a": 1}},
        {"op": "subscribe", "channel": std, "top": [1]}, {"op": "subscribe", "channel": std,
                                                          "top": {"n": 1}},
        {"op": "subscribe", "channel": std, "since": [1]}, {"op": "subscribe", "channel": std,
                                                            "top": 1.5},
        {"op": "subscribe", "channel": std, "since": -1},
        {"op": "subscribe", "channel": f"control:{s.race}", "token": ["t"]},
        {"op": "subscribe", "channel": f"control:{s.race}", "token": {"t": TOKEN}},
        {"op": "subscribe", "channel": f"control:{s.race}", "token": "é" * 1000},
        {"op": "subscribe", "channel": f"runner:{s.race}:" + "é" * 1000},
        {"op": "subscribe", "channel": "\u0000:\u0000"},
        {"op": "unsubscribe", "channel": {"a": 1}}, {"op": "unsubscribe", "channel": ["x"]},
        {"op": "unsubscribe"}, {"op": "command", "race": ["x"], "command": {"op": ["dnf"]}},
        {"op": "command", "race": {"r": 1}}, {"op": ["ping"]}, {"op": {"op": "ping"}},
        {"op": "ping", "op2": "subscribe"}]
    frames: list[str | bytes] = [orjson.dumps(m).decode() for m in messages]
    frames += [f'{{"op": "subscribe", "channel": "{std}", "since": {2**64}}}',
               f'{{"op": "subscribe", "channel": "{std}", "top": {10**40}}}',
               '{"op": "subscribe", "channel": "x", "channel": "y"}', '{"op": "ping"} {}',
               '{"op": "ping", "x": NaN}', "\ufeff{\"op\": \"ping\"}", b"\xff",
               f'{{"op": {2**64}}}', f'{{"op": "ping", "t": {10**400}}}']
    return frames


def expected(frame: str | bytes) -> tuple[str, set[str]]:
    """What the server must answer ``frame`` with, before the next request's answer:
    ('close', {}) for a frame over 64 KiB; else (op, the allowed reply types/codes)."""
    size = len(frame) if isinstance(frame, bytes) else len(frame.encode("utf-8", "replace"))
    if size > 64 * 1024:
        return "close", set()
    if isinstance(frame, bytes):
        return "noise", {"error:bad_json"}
    try:
        req = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return "noise", {"error:bad_json"}
    if not isinstance(req, dict):
        return "noise", {"error:bad_json"}
    op = req.get("op")
    if op == "ping":
        return "ping", {"pong"}
    if op == "subscribe":
        return "subscribe", {"error:bad_request", "error:unknown_channel", "error:unknown_race",
                             "error:unauthorized", "error:too_many_subscriptions",
                             "error:too_many_channels"}
    if op == "unsubscribe":
        return "unsubscribe", {"unsubscribed", "error:not_subscribed"}
    if op == "command":
        return "command", {"ack", *(f"error:{c}" for c in COMMAND_ERRORS)}
    return "other", {"error:unknown_op"}


class Talk:
    """A websocket client of the fuzz: sends one request, then a ping, and takes every
    message up to that ping's pong, each checked against the protocol's records."""

    def __init__(self, s: Served, f: Findings) -> None:
        self.s, self.f = s, f
        self.ws: websockets.ClientConnection | None = None
        self.control = False

    async def open(self) -> websockets.ClientConnection:
        if self.ws is None:
            self.ws = await websockets.connect(self.s.url, open_timeout=10, max_size=None,
                                               compression=None)
            self.control = False
        return self.ws

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    async def exchange(self, frame: str | bytes, where: str) -> list[Json] | ConnectionClosed:
        """The replies (no channel frames, heartbeats or late 'ahead' errors) that came
        before the sentinel pong; the ConnectionClosed when the server closed."""
        ws = await self.open()
        replies: list[Json] = []
        pongs = 0
        want = 2 if expected(frame)[0] == "ping" else 1
        try:
            await ws.send(frame)
            await ws.send('{"op": "ping"}')
            while pongs < want:
                raw = await asyncio.wait_for(ws.recv(), 10)
                try:
                    decode_frame(raw)
                    messages = unbatched(orjson.loads(raw))
                except Exception as exc:  # a message the protocol's records refuse
                    self.f.add("a server message that is not the protocol's",
                               f"{where}\n  -> {str(raw)[:300]}: {exc}")
                    continue
                for m in messages:
                    if m["type"] == "pong":
                        pongs += 1
                        if pongs == want:
                            break
                    if m["type"] == "error":
                        if not (isinstance(m.get("message"), str) and m["message"]):
                            self.f.add("an error frame without a message", f"{where}\n  -> {m}")
                        if m["code"] == "ahead":
                            continue
                    if m["type"] not in ("snapshot", "update", "heartbeat"):
                        replies.append(m)
        except ConnectionClosed as closed:
            self.ws = None
            return closed
        except TimeoutError:
            self.f.add("a request not answered within 10 s", where)
            await self.close()
        return replies


def reply_kind(m: Json) -> str:
    return f"error:{m['code']}" if m["type"] == "error" else str(m["type"])


async def test_websocket_answers_every_request_as_documented(served: Served) -> None:
    """Requests of every op with mutated fields (channels, since, top, tokens of every
    type and size), unknown ops, JSON that is not an object, garbled text, binary
    frames, frames over 64 KiB: each gets exactly the one answer docs/websocket.md
    gives it (a subscribe: at most an error, its snapshot later), every message fits
    the protocol's records, a frame over 64 KiB is closed 1009 and nothing else closes."""
    s, mark = served, served.service.mark()
    f = Findings("test_websocket_answers_every_request_as_documented")
    g = Gen(rng_for("websocket"))
    lanes = [[ws_request(g, s) for _ in range(cases(220))] for _ in range(6)]
    lanes[0][:0] = ws_corpus(s)

    async def lane(n: int, frames: list[str | bytes]) -> None:
        talk = Talk(s, f)
        try:
            for i, frame in enumerate(frames):
                where = f"lane {n} request {i}: {str(frame)[:300]!r}"
                op, allowed = expected(frame)
                got = await talk.exchange(frame, where)
                if isinstance(got, ConnectionClosed):
                    code = got.rcvd.code if got.rcvd else None
                    if op != "close" or code != 1009:
                        f.add(f"{op}: the server closed the connection ({code})",
                              f"{where}\n  -> close {code} {got.rcvd.reason if got.rcvd else ''}")
                    continue
                if op == "close":
                    f.add("a frame over 64 KiB was not closed 1009", where)
                    continue
                kinds = [reply_kind(m) for m in got]
                if op == "ping":
                    kinds = kinds[1:] if kinds[:1] == ["pong"] else kinds
                    allowed, need = set(), 0
                else:
                    need = 0 if op == "subscribe" else 1
                if len(kinds) not in (need, 1) or any(k not in allowed for k in kinds):
                    f.add(f"{op}: answered {kinds}, expected {'at most' if need == 0 else ''} "
                          f"one of {sorted(allowed)}", f"{where}\n  -> {got}"[:1000])
        finally:
            await talk.close()

    await asyncio.gather(*(lane(n, frames) for n, frames in enumerate(lanes)))
    await ws_still_serving(f, s)
    f.check(s.service, mark)


FRAME_CASES: list[tuple[str, list[bytes], bool, set[int | None]]] = [
    # (what, frames, half-close after, the close codes allowed; None: dropped)
    ("text frame of invalid UTF-8", [ws_frame(1, b'{"op": "ping"}\xff')], False, {1007}),
    ("text frame of a lone surrogate", [ws_frame(1, b'"\xed\xa0\x80"')], False, {1007}),
    ("reserved opcode 3", [ws_frame(3, b"x")], False, {1002}),
    ("reserved control opcode 0xB", [ws_frame(0xB, b"")], False, {1002}),
    ("RSV1 set (no extension agreed)", [ws_frame(1, b'{"op": "ping"}', rsv=4)], False, {1002}),
    ("RSV2 and RSV3 set", [ws_frame(1, b'{"op": "ping"}', rsv=3)], False, {1002}),
    ("a client frame not masked", [ws_frame(1, b'{"op": "ping"}', mask=False)], False, {1002}),
    ("a continuation with nothing to continue", [ws_frame(0, b"x")], False, {1002}),
    ("a fragmented ping", [ws_frame(9, b"", fin=False)], False, {1002}),
    ("a ping over 125 bytes", [ws_frame(9, b"x" * 126)], False, {1002}),
    ("a close of 1 byte", [ws_frame(8, b"\x03")], False, {1002}),
    ("a close with code 999", [ws_frame(8, struct.pack("!H", 999))], False, {1002}),
    ("a close with code 1005", [ws_frame(8, struct.pack("!H", 1005))], False, {1002}),
    ("a close with code 5000", [ws_frame(8, struct.pack("!H", 5000))], False, {1002}),
    ("a close whose reason is invalid UTF-8", [ws_frame(8, struct.pack("!H", 1000) + b"\xff")],
     False, {1007}),
    ("a frame declaring 2^63-1 bytes", [ws_frame(1, b"", length=2**63 - 1)], False, {1009}),
    ("a frame declaring 2^64-1 bytes", [b"\x81\xff" + b"\xff" * 8 + b"\x00" * 4], False,
     {1002, 1009}),
    ("a frame declaring 70000 bytes", [ws_frame(1, b"", length=70_000)], False, {1009}),
    ("a new text frame inside a fragmented one",
     [ws_frame(1, b'{"op"', fin=False), ws_frame(1, b': "ping"}')], False, {1002}),
    ("fragments adding up to over 64 KiB",
     [ws_frame(1, b"x" * 40_000, fin=False), ws_frame(0, b"x" * 40_000)], False, {1009}),
    ("a header cut short", [b"\x81"], True, {None}),
    ("a payload cut short", [ws_frame(1, b'{"op": "ping"}')[:9]], True, {None}),
]
VALID_FRAMES: list[tuple[str, list[bytes], str]] = [
    # (what, frames, what the answer must hold): the client closes (1000) once answered
    ("a fragmented text whose UTF-8 breaks across fragments",
     [ws_frame(1, b'{"op": "ping", "x": "\xc3', fin=False), ws_frame(0, b'\xa9"}')], '"pong"'),
    ("a ping interleaved in a fragmented request",
     [ws_frame(1, b'{"op": ', fin=False), ws_frame(9, b"hi"), ws_frame(0, b'"ping"}')],
     '"pong"'),
    ("empty fragments around a request",
     [ws_frame(1, b"", fin=False), ws_frame(0, b'{"op":"ping"}', fin=False), ws_frame(0, b"")],
     '"pong"'),
    ("an unsolicited pong, then an empty text",
     [ws_frame(10, b"x" * 125), ws_frame(1, b"")], '"bad_json"'),
    ("a binary frame in fragments", [ws_frame(2, b"\x00", fin=False), ws_frame(0, b"\xff")],
     '"bad_json"'),
]


async def test_malformed_websocket_frames_are_closed_with_a_code(served: Served) -> None:
    """Frames that break RFC 6455 (bad UTF-8, reserved opcodes and bits, unmasked,
    fragmented control frames, impossible lengths, bad close codes, cut short) and
    random bytes after the handshake: each closed with the code RFC 6455 gives (or the
    TCP connection dropped when it ends early), never 1011 nor left hanging; valid
    unusual ones (fragments, interleaved pings, empty fragments) are answered."""
    s, mark = served, served.service.mark()
    f = Findings("test_malformed_websocket_frames_are_closed_with_a_code")
    g = Gen(rng_for("frames"))
    items = list(FRAME_CASES)
    for n in range(cases(40)):
        noise = [g.rng.randbytes(g.rng.randint(1, 200))]
        if g.chance(0.5):
            noise = [ws_frame(g.pick([0, 1, 2, 8, 9, 10]), g.rng.randbytes(g.rng.randint(0, 130)),
                              fin=g.chance(0.7), rsv=g.pick([0, 0, 0, 1]),
                              mask=g.chance(0.9)) for _ in range(g.rng.randint(1, 3))]
        items.append((f"noise {n}: {noise[0][:40]!r}", noise, True,
                      {None, 1000, 1002, 1003, 1007, 1009}))

    async def one(i: int, item: tuple[str, list[bytes], bool, set[int | None]]) -> None:
        what, frames, eof, allowed = item
        got: WsClose = await ws_raw(s.ws, frames, eof=eof)
        where = f"{what}: sent {b''.join(frames)[:120]!r}\n  -> close {got.code} " \
                f"{got.reason!r} {got.note} texts={got.texts[:2]}"
        if "within" in got.note:
            f.add("a malformed frame left the connection hanging", where)
        elif got.code == 1011:
            f.add("a frame made the server fail (close 1011)", where)
        elif got.code not in allowed:
            f.add(f"{what}: close {got.code}, expected one of {sorted(allowed, key=str)}", where)

    async def valid(i: int, item: tuple[str, list[bytes], str]) -> None:
        what, frames, answer = item
        got = await ws_raw(s.ws, frames, close_after_text=True)
        if not any(answer in t for t in got.texts) or got.code != 1000:
            f.add("a valid but unusual frame sequence was not served",
                  f"{what}: close {got.code} {got.note} texts={got.texts[:2]}")

    await run_all(items, one)
    await run_all(VALID_FRAMES, valid, concurrency=2)
    await ws_still_serving(f, s)
    f.check(s.service, mark)


# ---------------------------------------------------------------- race control

def command_value(g: Gen, s: Served, name: str) -> Any:
    return {"bib": g.pick(s.bibs), "reason": g.pick(["hypothermia at the top", g.text(30)]),
            "device": "ZGM-SPARE-" + str(g.rng.randint(1, 9)),
            "alert_id": f"{s.race}:1:sos", "zone": "top-ridge", "on": g.chance(0.5),
            "checkpoint": g.pick(s.checkpoints), "t_ms": int(time.time() * 1000)}[name]


def command_corpus(s: Served) -> list[Json]:
    """Commands always sent, before the random ones: each shape of trouble once, and
    each that once failed the server (so that failure does not depend on the seed)."""
    t = int(time.time() * 1000)
    fields: list[Any] = [
        {"op": ["dnf"], "bib": "1"}, {"op": {"op": "dnf"}, "bib": "1", "id": "k-1"},
        {"op": "dnf", "bib": ["1"]}, {"op": "dnf", "bib": 1}, {"op": "dnf", "bib": "1",
                                                               "reason": "x" * 501},
        {"op": "weather", "zone": "top-ridge", "on": "yes"},
        {"op": "manual_split", "bib": "1", "checkpoint": "top", "t_ms": 2**64},
        {"op": "manual_split", "bib": "1", "checkpoint": "top", "t_ms": 1e308},
        {"op": "manual_split", "bib": "1", "checkpoint": "top", "t_ms": t, "id": "k-2"},
        {"op": "dnf", "bib": "1", "id": "x" * 101}, {"op": "dnf", "bib": "1", "id": ["a"]},
        {"op": "dnf", "bib": "\u0000"}, {"op": "ack", "alert_id": "é" * 500},
        {"op": "dnf", "bib": "1", "by": "someone else", "id": "k-3"}, {}, "dnf", ["dnf"],
        None, 7, {"op": "DNF", "bib": "1"}, {"op": None}]
    out: list[Json] = [{"op": "command", "race": s.race, "command": c} for c in fields]
    out += [{"op": "command", "race": race, "command": {"op": "dns", "bib": "1"}}
            for race in ("mini", "", None, 7, ["x"], s.race.upper())]
    out.append({"op": "command", "race": s.race})
    return out


def command_case(g: Gen, s: Served, n: int) -> Json:
    op = g.pick(list(OPS))
    required, optional = fields_of(op)
    fields: Json = {"op": op}
    for name in required:
        fields[name] = command_value(g, s, name)
    for name in optional:
        if g.chance(0.5):
            fields[name] = command_value(g, s, name)
    if g.chance(0.4):
        fields["id"] = g.pick([f"fz-{n}", f"fz-{n}", "", "x" * 100, "x" * 101, "é" * 100, 7,
                               None, [f"fz-{n}"], {"id": 1}, "\u0000"])
    if g.chance(0.6):
        fields = g.mutate(fields, g.rng.randint(1, 3))
    request: Json = {"op": "command", "race": s.race, "command": fields}
    if g.chance(0.1):
        request["race"] = g.pick(["mini", "", None, 7, s.race.upper(), g.text(5)])
    if g.chance(0.05):
        request = g.mutate(request)
    return request


async def test_race_control_commands_get_an_ack_or_an_error_naming_them(served: Served
                                                                         ) -> None:
    """Commands of every op, with fields missing, extra, of every wrong type, huge,
    unicode, with ids good and bad, for this race and others, on a connection holding
    a control token: each gets exactly one answer, an ``ack`` of the record as
    published (its id, ``by`` the token's name, this race) or an error of
    docs/websocket.md carrying the command's id when it had a usable one; never a
    closed connection."""
    s, mark = served, served.service.mark()
    f = Findings("test_race_control_commands_get_an_ack_or_an_error_naming_them")
    g = Gen(rng_for("commands"))
    requests = command_corpus(s) + [command_case(g, s, n) for n in range(cases(250))]
    talk = Talk(s, f)

    async def control() -> None:
        ws = await talk.open()
        await ws.send(orjson.dumps({"op": "subscribe", "channel": f"control:{s.race}",
                                    "token": TOKEN}).decode())
        while True:
            msg = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            if any(m.get("type") == "snapshot" for m in unbatched(msg)):
                return

    try:
        for i, request in enumerate(requests):
            if talk.ws is None:
                await control()
            frame = g.dumps(request).decode("utf-8", "replace")
            where = f"command {i}: {frame[:400]}"
            got = await talk.exchange(frame, where)
            if isinstance(got, ConnectionClosed):
                code = got.rcvd.code if got.rcvd else None
                f.add(f"a command closed the connection ({code})",
                      f"{where}\n  -> close {code} {got.rcvd.reason if got.rcvd else ''}")
                continue
            check_command(f, s, where, request, frame, got)
    finally:
        await talk.close()
    await ws_still_serving(f, s)
    f.check(s.service, mark)


def check_command(f: Findings, s: Served, where: str, request: Any, frame: str,
                  got: list[Json]) -> None:
    op, _ = expected(frame)
    if op != "command":
        return  # a mutation made it another request: the websocket fuzz's business
    if len(got) != 1:
        f.add(f"a command answered with {len(got)} messages", f"{where}\n  -> {got}")
        return
    answer = got[0]
    fields = request.get("command")
    given = fields.get("id") if isinstance(fields, dict) else None
    usable = isinstance(given, str) and 1 <= len(given) <= 100
    if answer["type"] == "ack":
        record = answer["command"]
        if record.get("race") != s.race or record.get("by") != "control:maite" \
                or record.get("id") != answer["id"] or (usable and answer["id"] != given):
            f.add("an ack whose record is not the command as published", f"{where}\n  -> "
                  f"{answer}"[:1000])
    elif answer["type"] == "error" and answer["code"] in COMMAND_ERRORS:
        if answer["code"] != "publish_failed" and usable and answer.get("id") != given:
            f.add("an error answering a command without the command's id",
                  f"{where}\n  -> {answer}"[:1000])
        if not usable and answer["code"] != "publish_failed" and "id" in answer:
            f.add("an error carrying an id the command did not have",
                  f"{where}\n  -> {answer}"[:1000])
    else:
        f.add("a command answered with something else than an ack or its errors",
              f"{where}\n  -> {answer}"[:1000])


# ------------------------------------------------------------------- the after

async def test_broadcaster_healthy_and_bounded_after_the_fuzz(served: Served) -> None:
    """After every fuzz test of this module: the broadcaster's RSS grew by less than
    RSS_BOUND_MIB over its size once warmed up, /healthz is 200, and with every fuzz client
    gone its connections and channels gauges come back to 0 (channels after
    --resume-s)."""
    s, mark = served, served.service.mark()
    f = Findings("test_broadcaster_healthy_and_bounded_after_the_fuzz")
    deadline = time.monotonic() + 15
    text = ""
    while time.monotonic() < deadline:
        _, body = await asyncio.to_thread(get, f"http://127.0.0.1:{s.http}/metrics")
        text = body.decode()
        if metric(text, "zegama_broadcast_connections") == 0 \
                and metric(text, "zegama_broadcast_channels") == 0:
            break
        await asyncio.sleep(0.3)
    else:
        f.add("connections or channels gauge not back to 0 within 15 s of the clients leaving",
              "\n".join(line for line in text.splitlines() if line.startswith(
                  ("zegama_broadcast_connections", "zegama_broadcast_channels",
                   "zegama_broadcast_subscriptions"))))
    end = s.service.rss_kib()
    print(f"broadcaster RSS: {s.rss_start} KiB warmed up, {end} KiB after the fuzz "
          f"({end - s.rss_start:+d} KiB)")
    if end - s.rss_start > RSS_BOUND_MIB * 1024:
        f.add(f"RSS grew by more than {RSS_BOUND_MIB} MiB over the fuzz",
              f"{s.rss_start} -> {end} KiB")
    await ws_still_serving(f, s)
    f.check(s.service, mark)

