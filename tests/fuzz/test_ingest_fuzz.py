"""Fuzzing a real ingest process (``zegama-live ingest``, its own OS process, on the
session's Kafka broker) through every door it has: ``POST /v1/pings``, ``POST
/v1/chip-reads``, the admin endpoints, the OsmAnd port (query string, form and JSON
body of Traccar Client), and HTTP itself (odd methods, paths, headers, framing).

Seeded random and mutated inputs (garbled and truncated JSON, wrong types, huge
numbers, unicode and invalid UTF-8, odd Content-Type and Content-Encoding). Whatever
comes in: no 5xx, only the answers docs/ingest.md lists, every JSON API error a JSON
``{"error", "message"}`` (the OsmAnd port answers a line of text, as Traccar), no
ERROR record or traceback in the process's log, /healthz still 200, and memory that a
second round of the same traffic does not grow.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from fuzz_support import (
    HUGE_NUMBERS,
    INVALID_UTF8,
    Answer,
    Findings,
    Gen,
    Header,
    Service,
    cases,
    exchange,
    get,
    host_corpus,
    http_garbage,
    http_request,
    json_error_problem,
    race_folder,
    rng_for,
    run_all,
    show,
    start_ingest,
    unique,
)

from ingest.auth import device_token

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

KEY = "fuzz-race-key-0123456789"
SECRET = "fuzz-device-secret-0123456789"
ADMIN = "fuzz-admin-key-0123456789"
ENTRANTS = """bib,name,sex,category,country,device,emergency_phone,chip
101,Ane Etxeberria,F,SEN,ES,ZGM-0001,+34 600 000 001,E2001
102,Kilian Test,M,SEN,ES,ZGM-0002,+34 600 000 002,E2002
103,Maite Zabala,F,V40,ES,902064,+34 600 000 003,
104,Jon Arregi,M,SEN,ES,48241179,+34 600 000 004,
"""
DEVICES = ["ZGM-0001", "ZGM-0002", "902064", "48241179"]
BIBS = ["101", "102", "103", "104"]
CHIPS = ["E2001", "E2002"]
CHECKPOINTS = ["start", "top", "finish"]
MAX_BATCH = 50
MAX_BODY = 65_536

BATCH = {202, 400, 401, 413, 415, 422}
ALLOWED = {("POST", "/v1/pings"): BATCH, ("POST", "/v1/chip-reads"): BATCH,
           ("POST", "/v1/admin/reload"): {200, 401, 403, 422},
           ("POST", "/v1/admin/reassign"): {200, 400, 401, 404},
           ("GET", "/v1/admin/devices"): {200, 401}}
OSMAND = {200, 400, 401, 404, 413, 415}
RSS_BOUND_MIB = 12  # growth of the ingest's VmRSS over a round of traffic once warm
# Label values of /metrics must be codes, never a client's text (unbounded series).
LABEL = re.compile(r'(\w+)="([^"]*)"')
CODE = re.compile(r"^[a-z0-9_.-]{1,40}$")


@dataclass
class Ingest:
    service: Service
    api: int
    osmand: int
    race: str


@pytest.fixture(scope="module")
def ingest(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingest]:
    tmp = tmp_path_factory.mktemp("fuzz-ingest")
    race = unique("fuzz-ingest")
    folder = race_folder(tmp, race, ENTRANTS)
    service, api, osmand = start_ingest(
        tmp, bootstrap, folder, race,
        {"ZEGAMA_INGEST_KEY": KEY, "ZEGAMA_INGEST_DEVICE_SECRET": SECRET,
         "ZEGAMA_INGEST_ADMIN_KEY": ADMIN},
        ["--max-batch", str(MAX_BATCH), "--max-body-bytes", str(MAX_BODY),
         "--reload-interval-s", "0.5",
         "--ack-timeout-s", "30"])  # a slow test machine must not turn into 503s
    try:
        yield Ingest(service, api, osmand, race)
    finally:
        service.stop()


# ------------------------------------------------------------------ generators

def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def a_time(g: Gen) -> Any:
    t = now_ms() - g.rng.randint(0, 3_600_000)
    return g.pick([t, iso(t), iso(t).replace("Z", "+02:00"), t + 3_600_000, str(t), t / 1000])


def a_fix(g: Gen) -> dict[str, Any]:
    fix: dict[str, Any] = {"device": g.pick(DEVICES), "ts": a_time(g),
                           "lat": round(42.94 + g.rng.uniform(-0.02, 0.02), 6),
                           "lon": round(-2.26 + g.rng.uniform(-0.02, 0.02), 6)}
    for name, value in (("ele", g.rng.uniform(100, 1400)), ("acc", g.rng.uniform(1, 60)),
                        ("bat", g.rng.random()), ("sos", g.chance(0.05))):
        if g.chance(0.5):
            fix[name] = value
    return fix


def a_read(g: Gen) -> dict[str, Any]:
    read: dict[str, Any] = {"checkpoint": g.pick(CHECKPOINTS), "ts": a_time(g)}
    if g.chance(0.7):
        read["bib"] = g.pick([*BIBS, 101, "999"])
    else:
        read["chip"] = g.pick([*CHIPS, "E9999"])
    if g.chance(0.5):
        read["reader"] = f"mat-{g.rng.randint(1, 9)}"
    return read


def batch_body(g: Gen, item: Any) -> bytes:
    """A batch as a client might get it wrong: array, object or JSON lines, mutated,
    garbled at byte level, nested deep, too many items, too large, or plain noise."""
    r = g.rng.random()
    if r < 0.04:
        return g.rng.randbytes(g.rng.randint(0, 600))
    if r < 0.07:
        return g.nested()
    if r < 0.1:
        return b""
    if r < 0.13:  # more items than --max-batch
        return json.dumps([item(g) for _ in range(MAX_BATCH + g.rng.randint(1, 20))]).encode()
    if r < 0.16:  # more bytes than --max-body-bytes
        return json.dumps([{**item(g), "pad": "x" * (MAX_BODY // 2)} for _ in range(2)]).encode()
    items = [item(g) for _ in range(g.rng.randint(1, 8))]
    if g.chance(0.5):
        items = g.mutate(items, g.rng.randint(1, 4))
    shape = g.rng.random()
    if shape < 0.6 or not isinstance(items, list):  # a mutation may replace the list
        body = g.dumps(items)
    elif shape < 0.75:
        body = g.dumps(items[0] if items else {})
    else:
        body = b"\n".join(g.dumps(i) for i in items) + g.pick([b"", b"\n", b"\r\n\r\n"])
    if g.chance(0.3):
        body = g.garble(body)
    return body


def encode(g: Gen, body: bytes) -> tuple[bytes, list[tuple[str, str | bytes]]]:
    """``body`` compressed (or said to be), with its Content-Type and Content-Encoding."""
    headers: list[tuple[str, str | bytes]] = []
    if g.chance(0.85):
        headers.append(("Content-Type", g.pick([
            "application/json", "application/json", "application/x-ndjson", "text/plain",
            "application/json; charset=latin-1", "multipart/form-data; boundary=zz",
            "application/x-www-form-urlencoded", "", "*/*", "application/json;;;=",
            g.header_value()])))
    r = g.rng.random()
    if r < 0.1:
        return gzip.compress(body), [*headers, ("Content-Encoding", g.pick(["gzip", "GZIP",
                                                                              " x-gzip "]))]
    if r < 0.15:
        return zlib.compress(body), [*headers, ("Content-Encoding", "deflate")]
    if r < 0.18:
        raw = zlib.compressobj(wbits=-15)
        return raw.compress(body) + raw.flush(), [*headers, ("Content-Encoding", "deflate")]
    if r < 0.22:  # says compressed, is not (or is cut, or has more after the end)
        fake = g.pick([body, gzip.compress(body)[:-5], gzip.compress(body) + b"junk",
                       zlib.compress(body)])
        return fake, [*headers, ("Content-Encoding", g.pick(["gzip", "deflate"]))]
    if r < 0.24:  # a small gzip that inflates far beyond the limit
        return gzip.compress(b"[" + b" " * (MAX_BODY * 40) + b"]"), \
            [*headers, ("Content-Encoding", "gzip")]
    if r < 0.3:
        return body, [*headers, ("Content-Encoding", g.pick([
            "br", "compress", "zstd", "identity", "gzip, gzip", "gzip, identity", "*", "",
            g.header_value()]))]
    return body, headers


def safe(value: str | bytes) -> str | bytes:
    """A header value HTTP can carry (no control characters: those are HTTP's own fuzz)."""
    if isinstance(value, bytes):
        return bytes(b for b in value if b >= 0x20 and b != 0x7F)
    return "".join(c for c in value if c >= " " and c != "\x7f")


def credentials(g: Gen, devices: list[str]) -> tuple[list[tuple[str, str | bytes]], str]:
    """Headers and a query string carrying a right, wrong or broken credential."""
    device = g.pick(devices)
    token = device_token(SECRET, device)
    r = g.rng.random()
    if r < 0.3:
        return [("Authorization", f"Bearer {KEY}")], ""
    if r < 0.42:
        return [("Authorization", f"Bearer {token}")], ""
    if r < 0.48:
        return [("Authorization", "Basic " + base64.b64encode(f"u:{KEY}".encode()).decode())], ""
    if r < 0.56:
        return [("Authorization", g.pick([
            "Basic " + base64.b64encode(g.pick(INVALID_UTF8)).decode(), "Basic !!!", "Basic ",
            "Basic " + g.text(12), "Bearer", "Bearer " + "k" * 8000, "bearer " + KEY,
            "Digest x", "Basic " + base64.b64encode(b"nocolon").decode(), g.header_value()]))], ""
    if r < 0.64:
        return [], "key=" + quote(g.pick([KEY, token, "wrong", "", g.text(10)]))
    if r < 0.7:
        return [("X-Ingest-Key", g.pick([KEY, token, g.header_value()]))], ""
    if r < 0.75:
        return [("Authorization", f"Bearer {ADMIN}")], ""
    if r < 0.8:
        return [("Authorization", f"Bearer {KEY}"), ("Authorization", "Bearer wrong")], ""
    return [], ""


def api_case(g: Gen) -> tuple[str, str, bytes]:
    """(method, route, request bytes) of one JSON API request."""
    r = g.rng.random()
    if r < 0.45:
        method, route, body = "POST", "/v1/pings", batch_body(g, a_fix)
    elif r < 0.8:
        method, route, body = "POST", "/v1/chip-reads", batch_body(g, a_read)
    elif r < 0.87:
        method, route, body = "POST", "/v1/admin/reassign", admin_body(g)
    elif r < 0.93:
        method, route, body = "POST", "/v1/admin/reload", g.pick([b"", b"{}", g.text(8).encode()])
    else:
        method, route, body = "GET", "/v1/admin/devices", b""
    auth, query = credentials(g, DEVICES)
    if route.startswith("/v1/admin") and g.chance(0.6):
        auth = [("Authorization", f"Bearer {ADMIN}")]
    body, headers = encode(g, body) if method == "POST" else (body, [])
    extra = [(k, safe(v)) for k, v in [*auth, *headers]]
    if g.chance(0.05):
        extra += [(f"X-Fuzz-{i}", safe(g.text(20))) for i in range(g.rng.randint(1, 60))]
    target = route + ("?" + query if query else "")
    if g.chance(0.05):
        target += ("&" if query else "?") + g.query()
    # A request line over aiohttp's 8190 bytes is refused before routing: HTTP's own fuzz.
    return method, route, http_request(method, target[:8000], extra, body)


def admin_body(g: Gen) -> bytes:
    obj: Any = {"device": g.pick([*DEVICES, "SPARE-" + g.text(6), ""]),
                "bib": g.pick([*BIBS, None, "999"])}
    if g.chance(0.5):
        obj = g.mutate(obj)
    body = g.dumps(obj)
    return g.garble(body) if g.chance(0.2) else body


OSMAND_KEYS = ["id", "deviceid", "lat", "lon", "location", "timestamp", "altitude", "speed",
               "bearing", "heading", "accuracy", "hdop", "batt", "alarm", "valid", "driverUniqueId"]


def osmand_value(g: Gen, name: str) -> str:
    t = now_ms() - g.rng.randint(0, 600_000)
    good = {"id": g.pick(DEVICES), "deviceid": g.pick(DEVICES), "lat": "42.95", "lon": "-2.27",
            "location": "42.95,-2.27", "timestamp": g.pick([str(t // 1000), str(t), iso(t),
                                                           iso(t)[:19].replace("T", " ")]),
            "altitude": "700", "speed": "3.4", "bearing": "270", "heading": "90",
            "accuracy": "12", "hdop": "0.9", "batt": "77", "alarm": "sos", "valid": "true"}
    if g.chance(0.6) and name in good:
        return good[name]
    return g.pick([g.text(12), g.pick(HUGE_NUMBERS), "nan", "inf", "-inf", "", "0", "0,0",
                   "42.9,", ",", "1,2,3", "１２", "0x1F", "1_000", str(g.number()),
                   "9" * 400, "2026-02-30 25:61:61", "-1"])


def osmand_case(g: Gen) -> tuple[str, bytes]:
    """(kind, request bytes) of one OsmAnd request: query, form or Traccar JSON."""
    device = g.pick(DEVICES)
    key = g.pick([device_token(SECRET, device), KEY, KEY, "wrong", "", g.text(8)])
    path = g.pick(["/", "/", "/osmand", "/" + "/".join(g.path_segment()
                                                        for _ in range(g.rng.randint(1, 3)))])
    r = g.rng.random()
    if r < 0.55:
        params = {"id": device, "lat": "42.95", "lon": "-2.27"}
        for name in g.rng.sample(OSMAND_KEYS, g.rng.randint(0, 6)):
            params[name] = osmand_value(g, name)
        if g.chance(0.2):
            params = g.mutate(params)
        if g.chance(0.1):
            params = {g.text(6): g.text(6) for _ in range(g.rng.randint(0, 5))}
        pairs = [(str(k), str(v)) for k, v in params.items()] if isinstance(params, dict) \
            else [("x", str(params))]
        if key and g.chance(0.9):
            pairs.append(("key", key))
        if g.chance(0.2):
            g.rng.shuffle(pairs)
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
        if g.chance(0.1):
            query = g.garble(query.encode()).decode("latin-1")
            query = quote(query, safe="=&%")
        if g.chance(0.3):  # the same as a POST form body
            body = query.encode()
            body, headers = encode(g, body)
            if g.chance(0.7):
                headers.append(("Content-Type", "application/x-www-form-urlencoded"))
            target = path + ("?key=" + quote(key) if key and g.chance(0.5) else "")
            return "form", http_request("POST", target, [(k, safe(v)) for k, v in headers]
                                        + header_credentials(g, device), body)
        return "query", http_request(g.pick(["GET", "GET", "POST"]), path + "?" + query,
                                     header_credentials(g, device))
    t = now_ms() - g.rng.randint(0, 600_000)
    obj: Any = {"device_id": device, "location": {
        "timestamp": g.pick([iso(t), t, str(t)]),
        "coords": {"latitude": 42.95, "longitude": -2.27, "accuracy": 9, "speed": 2.2,
                   "heading": 180, "altitude": 650},
        "is_moving": True, "battery": {"level": 0.6, "is_charging": False},
        "extras": {}}}
    if g.chance(0.3):
        obj["alarm"] = g.pick(["sos", True, 1, "SOS", None])
    if g.chance(0.7):
        obj = g.mutate(obj, g.rng.randint(1, 4))
    body = g.dumps(obj)
    if g.chance(0.25):
        body = g.garble(body)
    if g.chance(0.03):
        body = g.nested()
    if g.chance(0.03):
        body = b'{"device_id": "' + b"x" * (70 * 1024) + b'"}'
    body, headers = encode(g, body)
    if not any(k == "Content-Type" for k, _ in headers) or g.chance(0.5):
        headers = [h for h in headers if h[0] != "Content-Type"] + [
            ("Content-Type", "application/json")]
    target = path + ("?key=" + quote(key, safe="") if key else "")
    return "json", http_request("POST", target, [(k, safe(v)) for k, v in headers]
                                + header_credentials(g, device), body)


def header_credentials(g: Gen, device: str) -> list[tuple[str, str | bytes]]:
    """Now and then a credential in headers too (Traccar Client sends none; others may),
    often a broken one."""
    if not g.chance(0.25):
        return []
    if g.chance(0.4):
        return [("Authorization", safe(g.pick(["Basic ", "Bearer ", "Digest ", ""])
                                       + g.text(12)))]
    return [(k, safe(v)) for k, v in credentials(g, [device])[0]]


# --------------------------------------------------------------------- checks

def check_api(f: Findings, i: int, method: str, route: str, request: bytes, a: Answer) -> None:
    where = f"case {i}: {show(request)}\n  -> {a.brief()}"
    if a.status is None:
        f.add(f"{method} {route}: no answer", where)
        return
    if a.status >= 500:
        f.add(f"{method} {route}: {a.status}", where)
        return
    if a.status not in ALLOWED[(method, route)]:
        f.add(f"{method} {route}: status {a.status} is not one docs/ingest.md lists", where)
    batch = route in ("/v1/pings", "/v1/chip-reads") and a.status in (202, 422)
    if batch:
        problem = batch_answer_problem(a)
        if problem:
            f.add(f"{method} {route}: {a.status} answer {problem}", where)
    elif a.status >= 400 and (problem := json_error_problem(a)):
        f.add(f"{method} {route}: {a.status} error answer: {problem}", where)
    elif a.status == 200:
        try:
            assert isinstance(json.loads(a.body), dict)
        except (ValueError, AssertionError):
            f.add(f"{method} {route}: 200 answer is not a JSON object", where)


def batch_answer_problem(a: Answer) -> str | None:
    try:
        body = json.loads(a.body)
        accepted, rejected = body["accepted"], body["rejected"]
    except (ValueError, KeyError, TypeError):
        return "is not {\"accepted\", \"rejected\"}"
    if not isinstance(accepted, int) or not isinstance(rejected, list):
        return "has the wrong types"
    for r in rejected:
        if not (isinstance(r, dict) and isinstance(r.get("index"), int)
                and isinstance(r.get("reason"), str) and r["reason"]
                and isinstance(r.get("message"), str) and r["message"]):
            return f"has a rejection without index, reason and message: {r!r}"[:300]
    if a.status == 202 and accepted < 1:
        return "is a 202 that accepted nothing"
    if a.status == 422 and accepted != 0:
        return "is a 422 that accepted something"
    return None


def check_osmand(f: Findings, i: int, kind: str, request: bytes, a: Answer) -> None:
    where = f"case {i}: {show(request)}\n  -> {a.brief()}"
    if a.status is None:
        f.add(f"OsmAnd {kind}: no answer", where)
    elif a.status >= 500:
        f.add(f"OsmAnd {kind}: {a.status}", where)
    elif a.status not in OSMAND:
        f.add(f"OsmAnd {kind}: status {a.status} is not one docs/ingest.md lists", where)
    elif a.status >= 400:
        text = a.body.decode(errors="replace").strip()
        if not text or "\n" in text:
            f.add(f"OsmAnd {kind}: {a.status} without the one line of text that says why",
                  where)


def still_serving(f: Findings, ing: Ingest) -> None:
    status, body = get(f"http://127.0.0.1:{ing.api}/healthz")
    if status != 200:
        f.add("/healthz after the fuzz", f"{status} {body[:300]!r}")
    status, body = get(f"http://127.0.0.1:{ing.osmand}/?id=nobody&key={KEY}")
    if status != 400:
        f.add("the OsmAnd port after the fuzz", f"{status} {body[:300]!r}")


def corpus_api() -> list[tuple[str, str, bytes]]:
    """Inputs always sent, before the random ones: each shape of trouble once, and each
    input that once made a 5xx (so that failure does not depend on the seed)."""
    t = now_ms()
    fix = json.dumps({"device": "ZGM-0001", "ts": t, "lat": 42.95, "lon": -2.27}).encode()
    read = json.dumps({"bib": "101", "checkpoint": "top", "ts": t}).encode()
    key: list[Header] = [("Authorization", f"Bearer {KEY}")]
    out: list[tuple[str, str, bytes]] = []
    for route, body in (("/v1/pings", fix), ("/v1/chip-reads", read)):
        shapes: list[tuple[list[Header], bytes]] = [
            ([("Authorization", "Basic é")], body),  # non-ASCII Basic credentials
            ([("Authorization", "Basic " + "日本")], body),
            ([("Authorization", b"Basic \xff\xfe")], body),
            (key, b"[1e400]"), (key, b'{"device": "ZGM-0001", "ts": 1e400, "lat": 1, "lon": 1}'),
            (key, b'{"ts": 18446744073709551616, "device": "ZGM-0001", "lat": 1, "lon": 1}'),
            (key, b"[" * 100_000), (key, b"\xff\xfe[\x00]\x00"), (key, b"\x00" * 100),
            (key, b'[{"device": "\\ud800", "ts": 1, "lat": 1, "lon": 1}]'),
            (key, b'{"device": "ZGM-0001"}' + b"\n" * 5000),
            ([*key, ("Content-Encoding", "gzip")], b""),
            ([*key, ("Content-Encoding", "gzip")], gzip.compress(b" " * (MAX_BODY * 60))),
            ([*key, ("Content-Encoding", "deflate")], zlib.compress(body)[:-3]),
            ([*key, ("Content-Encoding", "br")], body),
            ([*key, ("Content-Type", "application/json; charset=\xff")], body),
        ]
        for headers, raw in shapes:
            out.append(("POST", route, http_request("POST", route, headers, raw)))
    for method, route in (("POST", "/v1/admin/reload"), ("GET", "/v1/admin/devices"),
                          ("POST", "/v1/admin/reassign")):
        for value in ("Basic é", "Basic 日本", f"Bearer {ADMIN}"):
            out.append((method, route, http_request(method, route, [("Authorization", value)],
                                                    b'{"device": "ZGM-0001", "bib": null}')))
    return out


def corpus_osmand() -> list[tuple[str, bytes]]:
    """OsmAnd inputs always sent (see corpus_api)."""
    t = now_ms() // 1000
    query = f"/?id=ZGM-0001&lat=42.95&lon=-2.27&timestamp={t}&key={KEY}"
    body = json.dumps({"device_id": "ZGM-0001", "location": {
        "timestamp": iso(t * 1000), "coords": {"latitude": 42.95, "longitude": -2.27}}}).encode()
    json_ct = ("Content-Type", "application/json")
    out: list[tuple[str, bytes]] = []
    for auth in ("Basic é", "Basic 日本", "Bearer é"):
        out.append(("query", http_request("GET", query, [("Authorization", auth)])))
        out.append(("json", http_request("POST", f"/?key={KEY}", [json_ct, ("Authorization",
                                                                            auth)], body)))
    for weird in ("lat=1e400", "lat=nan", "timestamp=" + "9" * 400, "id=" + "x" * 4000,
                  "location=,", "location=" + "9" * 400 + ",1", "batt=-1e400", "speed=inf"):
        out.append(("query", http_request("GET", f"{query}&{weird}")))
    for raw in (b"[" * 50_000, b'{"device_id": ["ZGM-0001"]}', b'{"device_id": "ZGM-0001", '
                b'"location": []}', b"\xff\xfe{\x00", b'{"device_id": "\\ud800"}'):
        out.append(("json", http_request("POST", f"/?key={KEY}", [json_ct], raw)))
    return out


async def api_round(ing: Ingest, g: Gen, n: int, f: Findings, corpus: bool = False) -> None:
    items = (corpus_api() if corpus else []) + [api_case(g) for _ in range(n)]

    async def one(i: int, item: tuple[str, str, bytes]) -> None:
        method, route, request = item
        check_api(f, i, method, route, request, await exchange(ing.api, request))

    await run_all(items, one)


async def osmand_round(ing: Ingest, g: Gen, n: int, f: Findings, corpus: bool = False
                       ) -> None:
    items = (corpus_osmand() if corpus else []) + [osmand_case(g) for _ in range(n)]

    async def one(i: int, item: tuple[str, bytes]) -> None:
        kind, request = item
        check_osmand(f, i, kind, request, await exchange(ing.osmand, request))

    await run_all(items, one)


# ---------------------------------------------------------------------- tests

async def test_json_api_answers_every_input_with_a_documented_json_answer(ingest: Ingest
                                                                           ) -> None:
    """Pings, chip reads and admin requests, mutated every way: no 5xx, only the
    statuses of docs/ingest.md, error bodies ``{"error", "message"}``, batch answers
    listing each refusal with its index, reason and message."""
    mark = ingest.service.mark()
    f = Findings("test_json_api_answers_every_input_with_a_documented_json_answer")
    await api_round(ingest, Gen(rng_for("api")), cases(600), f, corpus=True)
    still_serving(f, ingest)
    f.check(ingest.service, mark)


async def test_osmand_port_answers_every_input_as_traccar_does(ingest: Ingest) -> None:
    """Query strings, forms and Traccar JSON bodies, mutated: no 5xx, only the statuses
    of docs/ingest.md, each refusal with a line of text saying why."""
    mark = ingest.service.mark()
    f = Findings("test_osmand_port_answers_every_input_as_traccar_does")
    await osmand_round(ingest, Gen(rng_for("osmand")), cases(400), f, corpus=True)
    still_serving(f, ingest)
    f.check(ingest.service, mark)


async def test_broken_http_never_gets_a_5xx_nor_stops_the_service(ingest: Ingest) -> None:
    """Requests that break HTTP itself (noise, odd methods and versions, huge and many
    headers, odd Host headers, bad framing, requests cut short) on both ports: an
    answer below 500 or the connection closed, never a hang, and the service still
    serving."""
    mark = ingest.service.mark()
    f = Findings("test_broken_http_never_gets_a_5xx_nor_stops_the_service")
    g = Gen(rng_for("http"))
    items = [(port, *http_garbage(g, routes))
             for port, routes in ((ingest.api, ["/v1/pings", "/v1/chip-reads", "/healthz",
                                                "/v1/admin/reassign"]),
                                  (ingest.osmand, ["/", "/osmand"]))
             for _ in range(cases(120))]
    items += [(ingest.api, request, False) for request in host_corpus(["/healthz", "/metrics"])]
    items += [(ingest.osmand, request, False) for request in host_corpus([f"/?key={KEY}"])]
    # Uploads that stop half-way (a phone losing its network): the client is gone, and
    # the handler reading the body must not fail with a traceback.
    for port, route in ((ingest.api, "/v1/pings"), (ingest.api, "/v1/chip-reads"),
                        (ingest.osmand, "/"), (ingest.osmand, f"/?key={KEY}")):
        for framing, body in (([("Content-Length", "1000")], b'[{"device": "ZGM-0001", '),
                              ([("Transfer-Encoding", "chunked")], b"100\r\n{\"device_id")):
            headers = [("Authorization", f"Bearer {KEY}"), ("Content-Type", "application/json"),
                       *framing]
            items.append((port, http_request("POST", route, headers, body, length=False), True))

    async def one(i: int, item: tuple[int, bytes, bool]) -> None:
        port, request, eof = item
        a = await exchange(port, request, eof=eof, timeout=15)
        where = f"case {i} (port {'API' if port == ingest.api else 'OsmAnd'}): {show(request)}" \
                f"\n  -> {a.brief()}"
        if a.status is not None and a.status >= 500:
            f.add(f"broken HTTP answered {a.status}", where)
        elif a.status is None and "within" in a.note:
            f.add("broken HTTP left hanging: neither answered nor closed", where)

    await run_all(items, one)
    still_serving(f, ingest)
    f.check(ingest.service, mark)


UNROUTED = [("GET", "/v1/pings"), ("PUT", "/v1/pings"), ("DELETE", "/v1/chip-reads"),
            ("GET", "/v1/admin/reload"), ("POST", "/v1/admin/devices"), ("POST", "/v1/ping"),
            ("POST", "/v1/pings/"), ("POST", "//v1/pings"), ("GET", "/"), ("GET", "/v2/pings"),
            ("PATCH", "/healthz"), ("POST", "/metrics"), ("OPTIONS", "/v1/pings"),
            ("GET", "/v1/admin"), ("POST", "/V1/PINGS")]


async def test_json_api_answers_unrouted_requests_with_json_errors(ingest: Ingest) -> None:
    """A wrong path or method on the JSON API port is an error answer like the others:
    4xx with ``{"error", "message"}`` (docs/ingest.md: the port serves JSON APIs)."""
    mark = ingest.service.mark()
    f = Findings("test_json_api_answers_unrouted_requests_with_json_errors")
    g = Gen(rng_for("unrouted"))
    items = UNROUTED + [(g.pick(["GET", "POST"]), "/v1/" + g.path_segment()[:200])
                        for _ in range(cases(20))]

    async def one(i: int, item: tuple[str, str]) -> None:
        method, path = item
        request = http_request(method, path, [("Authorization", f"Bearer {KEY}")], b"[]")
        a = await exchange(ingest.api, request)
        where = f"{method} {path[:100]} -> {a.brief()}"
        if a.status is None or a.status >= 500:
            f.add("unrouted request: no answer or 5xx", where)
        elif a.status < 400:
            f.add("unrouted request served", where)
        elif problem := json_error_problem(a):
            f.add(f"unrouted request's {a.status} error answer: {problem}", where)

    await run_all(items, one)
    f.check(ingest.service, mark)


async def test_memory_is_bounded_under_repeated_hostile_traffic(ingest: Ingest) -> None:
    """RSS of the ingest process (VmRSS) after a warm-up round and after a second,
    larger round of the same kind of traffic (with its large bodies): the second round
    must not grow it by more than RSS_BOUND_MIB. And /metrics labels are codes, never a
    client's text (which would grow the series without end). (The answers to this
    traffic are the other tests' business.)"""
    f = Findings("test_memory_is_bounded_under_repeated_hostile_traffic")
    answers = Findings("answers: the other tests' business")
    g = Gen(rng_for("memory"))
    start = ingest.service.rss_kib()
    await api_round(ingest, g, cases(150), answers)
    await osmand_round(ingest, g, cases(80), answers)
    warm = ingest.service.rss_kib()
    await api_round(ingest, g, cases(550), answers)
    await osmand_round(ingest, g, cases(300), answers)
    end = ingest.service.rss_kib()
    grown = end - warm
    print(f"ingest RSS: {start} KiB at start of test, {warm} KiB after warm-up, "
          f"{end} KiB after {cases(550) + cases(300)} more requests ({grown:+d} KiB)")
    if grown > RSS_BOUND_MIB * 1024:
        f.add(f"RSS grew by more than {RSS_BOUND_MIB} MiB over a round of traffic after warm-up",
              f"{warm} KiB -> {end} KiB (+{grown} KiB)")
    status, text = get(f"http://127.0.0.1:{ingest.api}/metrics")
    assert status == 200
    for name, value in LABEL.findall(text.decode()):
        if name not in ("le", "quantile") and not CODE.match(value):
            f.add("a /metrics label carries something other than a code",
                  f"{name}={value!r}")
    still_serving(f, ingest)
    f.check()
    assert ingest.service.alive(), ingest.service.tail()

