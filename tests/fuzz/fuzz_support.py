"""What the fuzz tests share: the seed, services run as their own processes, a raw HTTP
client, a raw websocket client, generators of hostile input, and the findings report.

Every input is drawn from a ``random.Random`` seeded with the session's seed and the
test's name, so ``ZEGAMA_FUZZ_SEED=<seed>`` replays a failed run's inputs exactly
(``ZEGAMA_FUZZ_SCALE`` multiplies the number of cases, for a longer local hunt).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import os
import random
import re
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from loadtest.stack import free_port
from zegama_live.service import stop_child

PROBE = Path(__file__).with_name("service_probe.py")  # runs zegama-live's main
REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "tests" / "data" / "races" / "mini"
SEED_ENV = "ZEGAMA_FUZZ_SEED"
SCALE_ENV = "ZEGAMA_FUZZ_SCALE"
Json = dict[str, Any]
Header = tuple[str | bytes, str | bytes]
T = TypeVar("T")


def session_seed() -> int:
    """The seed of this run: ``ZEGAMA_FUZZ_SEED``, or a fresh one (printed on failure)."""
    given = os.environ.get(SEED_ENV, "").strip()
    return int(given) if given else random.SystemRandom().randrange(2**32)


SEED = session_seed()


def rng_for(name: str, seed: int = SEED) -> random.Random:
    """A generator of its own for each test (a str seed is hashed the same on every run)."""
    return random.Random(f"{seed}/{name}")


def cases(n: int) -> int:
    """``n`` cases, times ``ZEGAMA_FUZZ_SCALE`` (default 1)."""
    return max(1, round(n * float(os.environ.get(SCALE_ENV, "1") or 1)))


def reproduce(test: str) -> str:
    return f"fuzz seed {SEED}: rerun with {SEED_ENV}={SEED} .venv/bin/pytest tests/fuzz -k {test}"


# --------------------------------------------------------------------------- services

def rss_kib(pid: int) -> int:
    """The resident set size of process ``pid`` in KiB (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (\w+) (\S+) ")
_PROJECT_FRAME = re.compile(r'File "[^"]*/(?:ingest|broadcast|zegama_live|race_engine)/[^"]+", '
                            r"line \d+, in \S+")


@dataclass
class Problem:
    """An ERROR or CRITICAL record of a service's log, or a traceback in it."""

    head: str  # the record's line
    exception: str  # the traceback's last line ("" when none)
    where: str  # the deepest frame in the project's code ("" when none)

    @property
    def http_parse_error(self) -> bool:
        """aiohttp's own record of a request it could not parse (aiohttp logs each at
        ERROR with its traceback, before any handler runs): noise, not a handler's
        failure."""
        return "aiohttp.server Error handling request" in self.head and not self.where \
            and self.exception.startswith("aiohttp.http_exceptions.")

    def __str__(self) -> str:
        parts = [self.head]
        if self.exception:
            parts.append(f"    raised {self.exception}")
        if self.where:
            parts.append(f"    at {self.where}")
        return "\n".join(parts)


def log_problems(text: str) -> list[Problem]:
    """The ERROR/CRITICAL records and tracebacks of a log written in LOG_FORMAT."""
    found: list[Problem] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        record = _RECORD.match(line)
        bad = (record is not None and record.group(1) in ("ERROR", "CRITICAL")) \
            or line.startswith("Traceback")
        if not bad:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not _RECORD.match(lines[j]):
            j += 1
        body = lines[i + 1:j]
        frames = [m.group(0) for b in body if (m := _PROJECT_FRAME.search(b))]
        exc = next((b.strip() for b in reversed(body) if b and not b.startswith(" ")
                    and not b.startswith("Traceback") and not b.startswith("During")), "")
        found.append(Problem(line[:300], exc[:300], frames[-1] if frames else ""))
        i = j
    return found


@dataclass
class Service:
    """A ``zegama-live`` command run as its own process, its output in a log file."""

    name: str
    args: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    probe: Path | None = None  # where service_probe.py writes its memory figures

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        """Start ``zegama-live <args>`` through service_probe.py: every log record
        written, and with ``probe`` the memory figures on SIGUSR1."""
        command, env = [sys.executable, str(PROBE)], {**os.environ, **self.env}
        if self.probe is not None:
            env["ZEGAMA_MEMORY_PROBE"] = str(self.probe)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([*command, *self.args], stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)

    def memory(self, timeout_s: float = 10.0) -> dict[str, int]:
        """The probe's figures now (see service_probe.py): RSS, RSS after malloc_trim,
        Python's allocated blocks and GC objects after a collection."""
        assert self.probe is not None, "start the service with a probe"
        before = self.probe.read_text().count("\n") if self.probe.exists() else 0
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            lines = self.probe.read_text().splitlines() if self.probe.exists() else []
            if len(lines) > before:
                return json.loads(lines[-1])  # type: ignore[no-any-return]
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not answer the memory probe:\n{self.tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def mark(self) -> int:
        """Where the log ends now: ``problems(since=mark)`` is what was logged after."""
        return self.log.stat().st_size if self.log.exists() else 0

    def problems(self, since: int = 0) -> list[Problem]:
        with open(self.log, "rb") as f:
            f.seek(since)
            return log_problems(f.read().decode(errors="replace"))

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def stop(self) -> None:
        if self.proc is not None:
            stop_child(self.proc, grace_s=5)


def get(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None
        ) -> tuple[int, bytes]:
    """GET ``url``: (status, body); (0, reason) when nothing answers."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, urllib.error.URLError) as exc:
        return 0, str(exc).encode()


def wait_healthy(service: Service, url: str, timeout_s: float = 60.0) -> None:
    """Until ``url`` answers 200; AssertionError with the log's tail when it does not."""
    deadline = time.monotonic() + timeout_s
    status, body = 0, b""
    while time.monotonic() < deadline:
        assert service.alive(), f"{service.name} exited at start:\n{service.tail()}"
        status, body = get(url, timeout=2)
        if status == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"{service.name} not healthy after {timeout_s} s ({status} "
                         f"{body[:200]!r}):\n{service.tail()}")


def start_ingest(tmp: Path, bootstrap: str, race_dir: Path, race_id: str, keys: dict[str, str],
                 extra: Sequence[str] = ()) -> tuple[Service, int, int]:
    """``zegama-live ingest`` on free ports: (service, API port, OsmAnd port)."""
    for attempt in range(3):
        api, osmand = free_port(), free_port()
        service = Service("ingest", ["ingest", "--host", "127.0.0.1", "--port", str(api),
                                     "--osmand-port", str(osmand), "--race-dir", str(race_dir),
                                     "--race-id", race_id, "--kafka-bootstrap", bootstrap,
                                     *extra],
                          tmp / f"ingest-{attempt}.log", env=keys)
        service.start()
        try:
            wait_healthy(service, f"http://127.0.0.1:{api}/healthz")
            return service, api, osmand
        except AssertionError:
            service.stop()
            if attempt == 2 or "address already in use" not in service.text().lower():
                raise
    raise AssertionError("unreachable")


_PORTS = re.compile(r"HTTP on [\d.]+:(\d+), websocket on [\d.]+:(\d+)")


def start_broadcast(tmp: Path, bootstrap: str, races: Sequence[Path], env: dict[str, str],
                    extra: Sequence[str] = (), probe: bool = False
                    ) -> tuple[Service, int, int]:
    """``zegama-live broadcast`` on ports it picks (0), read from its log once it is
    rebuilt from Kafka: (service, HTTP port, websocket port). With ``probe``, under
    service_probe.py's memory figures (``Service.memory()``)."""
    args = ["broadcast", "--host", "127.0.0.1", "--http-port", "0", "--ws-port", "0",
            "--bootstrap", bootstrap]
    for race in races:
        args += ["--race", str(race)]
    service = Service("broadcast", [*args, *extra], tmp / "broadcast.log", env=env,
                      probe=tmp / "memory.jsonl" if probe else None)
    service.start()
    deadline = time.monotonic() + 60
    while (found := _PORTS.search(service.text())) is None:
        assert service.alive(), f"broadcast exited at start:\n{service.tail()}"
        assert time.monotonic() < deadline, f"broadcast did not listen:\n{service.tail()}"
        time.sleep(0.1)
    http, ws = int(found.group(1)), int(found.group(2))
    wait_healthy(service, f"http://127.0.0.1:{http}/healthz")
    return service, http, ws


def metric(text: str, name: str, labels: str = "") -> float | None:
    """The value of sample ``name{labels}`` in a Prometheus exposition, None when absent."""
    want = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


def race_folder(tmp: Path, race_id: str, entrants: str | None = None) -> Path:
    """A copy of the mini race called ``race_id``, with ``entrants`` (CSV) when given."""
    dest = tmp / race_id
    shutil.copytree(MINI, dest)
    if entrants is not None:
        (dest / "entrants.csv").write_text(entrants, encoding="utf-8")
    return dest


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


# ---------------------------------------------------------------------- raw HTTP

@dataclass
class Answer:
    """An HTTP answer as it came off the socket (``status`` None: none came)."""

    status: int | None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    note: str = ""  # why there is no answer: closed, timeout, reset

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def brief(self) -> str:
        if self.status is None:
            return f"no answer ({self.note})"
        ctype = self.header("content-type") or "-"
        return f"{self.status} [{ctype}] {self.body[:200]!r}"


def http_request(method: str | bytes, target: str | bytes,
                 headers: Iterable[tuple[str | bytes, str | bytes]] = (), body: bytes = b"",
                 *, length: bool = True, version: bytes = b"HTTP/1.1") -> bytes:
    """The bytes of a request, sent as given (str as UTF-8, bytes as they are); Host and
    ``Connection: close`` are added unless given, Content-Length when ``length``."""
    def raw(v: str | bytes) -> bytes:
        return v if isinstance(v, bytes) else v.encode("utf-8", "surrogatepass")

    lines = [raw(method) + b" " + raw(target) + b" " + version]
    names = set()
    for k, v in headers:
        names.add(raw(k).lower())
        lines.append(raw(k) + b": " + raw(v))
    if b"host" not in names:
        lines.append(b"Host: 127.0.0.1")
    if b"connection" not in names:
        lines.append(b"Connection: close")
    if length and b"content-length" not in names and b"transfer-encoding" not in names \
            and (body or raw(method) in (b"POST", b"PUT", b"PATCH")):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def exchange(port: int, request: bytes, *, timeout: float = 10.0, eof: bool = False
                   ) -> Answer:
    """Send ``request`` on a new connection to 127.0.0.1:``port`` and read one answer
    (``eof``: half-close after sending, for requests that end early)."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
            try:
                try:
                    writer.write(request)
                    if eof:
                        writer.write_eof()
                    await writer.drain()
                except (ConnectionResetError, BrokenPipeError):
                    pass  # the server may answer and close before taking everything
                head_only = request[:5].upper() == b"HEAD "
                return await _read_answer(reader, head_only)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except TimeoutError:
        return Answer(None, note=f"no answer within {timeout} s")
    except ConnectionResetError:
        return Answer(None, note="connection reset")


async def _read_answer(reader: asyncio.StreamReader, head_only: bool) -> Answer:
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            return Answer(None, note=f"closed after {len(exc.partial)} bytes {exc.partial[:80]!r}")
        except ConnectionResetError:
            return Answer(None, note="connection reset")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            return Answer(None, note=f"not an HTTP status line: {lines[0][:80]!r}")
        headers = []
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers.append((k.strip().lower(), v.strip()))
        if 100 <= status < 200 and status != 101:
            continue  # 100 Continue: the answer follows
        answer = Answer(status, headers)
        break
    if head_only or status in (101, 204, 304):
        return answer
    try:
        if "chunked" in (answer.header("transfer-encoding") or "").lower():
            chunks = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunks.append(await reader.readexactly(size + 2))
                if size == 0:
                    break
            answer.body = b"".join(c[:-2] for c in chunks)
        elif (length := answer.header("content-length")) is not None:
            answer.body = await reader.readexactly(int(length))
        else:
            answer.body = await reader.read()
    except (asyncio.IncompleteReadError, ConnectionResetError, ValueError) as exc:
        answer.note = f"body cut short: {exc!r}"
    return answer


async def run_all(items: Sequence[Any], work: Callable[[int, Any], Awaitable[None]],
                  concurrency: int = 8) -> None:
    """``work(index, item)`` for every item, ``concurrency`` at a time."""
    queue = list(enumerate(items))[::-1]

    async def worker() -> None:
        while queue:
            i, item = queue.pop()
            await work(i, item)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


# ----------------------------------------------------------------- raw websocket

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = True,
             length: int | None = None) -> bytes:
    """One websocket frame as a client sends it; ``length`` overrides the declared length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0xF)])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = secrets.token_bytes(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@dataclass
class WsClose:
    """How a raw websocket session ended: the server's close code and reason, or none."""

    code: int | None  # None: no close frame
    reason: str = ""
    texts: list[str] = field(default_factory=list)  # text messages received before
    note: str = ""


async def ws_raw(port: int, frames: Sequence[bytes], *, eof: bool = False,
                 handshake: bytes | None = None, timeout: float = 6.0,
                 close_after_text: bool = False) -> WsClose:
    """Open a websocket by hand, send ``frames`` as they are, read until the server
    closes (or ``timeout``), answering nothing; with ``close_after_text``, close
    (1000) once a text message has come."""
    key = base64.b64encode(secrets.token_bytes(16))
    hello = handshake or (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key
                          + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    result = WsClose(None)
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(hello)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 101"):
                    result.note = f"handshake refused: {head[:60]!r}"
                    return result
                try:
                    for f in frames:
                        writer.write(f)
                    if eof:
                        writer.write_eof()
                    await writer.drain()
                except (ConnectionResetError, BrokenPipeError):
                    pass
                if close_after_text:
                    await _read_frames(reader, result, until_text=True)
                    if result.texts and result.code is None:
                        writer.write(ws_frame(8, struct.pack("!H", 1000)))
                        await _read_frames(reader, result)
                else:
                    await _read_frames(reader, result)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except TimeoutError:
        result.note = f"the server neither closed nor answered within {timeout} s"
    except (ConnectionResetError, asyncio.IncompleteReadError):
        result.note = result.note or "connection dropped without a close frame"
    return result


async def _read_frames(reader: asyncio.StreamReader, result: WsClose,
                       until_text: bool = False) -> None:
    parts: list[bytes] = []
    while True:
        try:
            b0, b1 = await reader.readexactly(2)
        except asyncio.IncompleteReadError:
            result.note = "connection dropped without a close frame"
            return
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await reader.readexactly(8))[0]
        payload = await reader.readexactly(n)
        opcode = b0 & 0xF
        if opcode == 8:
            result.code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            result.reason = payload[2:].decode(errors="replace")
            return
        if opcode in (1, 0):
            parts.append(payload)
            if b0 & 0x80:
                result.texts.append(b"".join(parts).decode(errors="replace"))
                parts = []
                if until_text:
                    return


# ------------------------------------------------------------------ generators

INVALID_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1",
                b"\xf0\x28\x8c\xbc", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80",
                b"\x80", b"\xe2\x82"]
UNICODE = ["é", "ñ", "ü", "Ł", "ß", "日本", "語", "🏃", "🏔️", "\u200b", "\u200f", "\u202e", "\ufeff",
           "\u2028", "\u0000", "\u0007", "\x1b[31m", "e\u0301", "ﷺ", "\U0010ffff", "İ", "Ω",
           "\\", '"', "'", "<script>", "%00", "%ff", "../", "\r\n", "\t", " "]
HUGE_NUMBERS = ["1e400", "-1e400", "1" * 400, "-" + "9" * 40, "1e-400", "0." + "0" * 400 + "1",
                "123456789012345678901234567890", "18446744073709551616", "-9223372036854775809",
                "1.7976931348623157e309", "4.9e-325", "1E+2147483648"]


class Gen:
    """Hostile values, drawn from ``rng``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, seq: Sequence[T]) -> T:
        return seq[self.rng.randrange(len(seq))]

    def text(self, max_len: int = 24) -> str:
        """Random text: ASCII, accents, CJK, emoji, controls, bidi and zero-width marks."""
        out = []
        for _ in range(self.rng.randint(0, max_len)):
            r = self.rng.random()
            if r < 0.5:
                out.append(chr(self.rng.randint(0x20, 0x7E)))
            elif r < 0.8:
                out.append(self.pick(UNICODE))
            else:
                out.append(chr(self.rng.choice([self.rng.randint(0, 0x1F),
                                                self.rng.randint(0x80, 0x7FF),
                                                self.rng.randint(0x800, 0xD7FF),
                                                self.rng.randint(0xE000, 0x10FFFF)])))
        return "".join(out)

    def number(self) -> Any:
        return self.pick([0, -1, 1, 2**31, 2**31 - 1, -(2**31), 2**53 + 1, 2**63 - 1, -(2**63),
                          2**64, 10**30, -(10**30), 0.5, -0.0, 1e308, -1e308, 5e-324, 1e-7,
                          self.rng.randint(-10**6, 10**6), self.rng.uniform(-1e6, 1e6),
                          float("nan"), float("inf"), float("-inf")])

    def scalar(self) -> Any:
        r = self.rng.random()
        if r < 0.1:
            return None
        if r < 0.2:
            return self.chance(0.5)
        if r < 0.5:
            return self.number()
        if r < 0.6:
            return "x" * self.pick([0, 1, 101, 501, 4096, 40_000])
        return self.text()

    def value(self, depth: int = 3) -> Any:
        """Any JSON-ish value, nested up to ``depth``."""
        r = self.rng.random()
        if depth <= 0 or r < 0.6:
            return self.scalar()
        if r < 0.8:
            return [self.value(depth - 1) for _ in range(self.rng.randint(0, 4))]
        return {self.text(8): self.value(depth - 1) for _ in range(self.rng.randint(0, 4))}

    def wrong(self, current: Any) -> Any:
        """A value of another type than ``current``, or an extreme one of the same."""
        options = [None, True, False, 0, -1, 2**64, 10**30, 1e308, float("nan"), "", " ",
                   self.text(), "x" * 600, [], [current], {}, {"v": current},
                   self.value(2), "9" * 30, "-0", "1e999", "null", "true"]
        return self.pick(options)

    def mutate(self, obj: Any, steps: int | None = None) -> Any:
        """``obj`` with one to a few structural changes at random places."""
        out = copy.deepcopy(obj)
        for _ in range(steps or self.rng.randint(1, 3)):
            out = self._mutate_once(out)
        return out

    def _mutate_once(self, obj: Any) -> Any:
        if isinstance(obj, dict) and obj and self.chance(0.8):
            key = self.pick(list(obj))
            r = self.rng.random()
            if r < 0.2:
                del obj[key]
            elif r < 0.3:
                obj[self.text(10)] = self.value(2)
            elif r < 0.75:
                obj[key] = self.wrong(obj[key])
            else:
                obj[key] = self._mutate_once(obj[key])
            return obj
        if isinstance(obj, list) and obj and self.chance(0.8):
            i = self.rng.randrange(len(obj))
            r = self.rng.random()
            if r < 0.2:
                del obj[i]
            elif r < 0.35:
                obj.insert(i, self.value(2))
            elif r < 0.5:
                obj.extend(copy.deepcopy(obj[: self.rng.randint(1, 3)]))
            else:
                obj[i] = self._mutate_once(obj[i])
            return obj
        return self.wrong(obj)

    def dumps(self, obj: Any) -> bytes:
        """``obj`` as JSON text as sloppy clients write it: NaN and Infinity, big integers,
        non-ASCII raw or escaped, lone surrogates as they are (invalid UTF-8)."""
        text = json.dumps(obj, ensure_ascii=self.chance(0.3), allow_nan=True,
                          separators=self.pick([(",", ":"), (", ", ": ")]))
        return text.encode("utf-8", "surrogatepass")

    def garble(self, data: bytes) -> bytes:
        """``data`` with a few byte-level changes: cut, flipped, spliced, invalid UTF-8."""
        out = bytearray(data)
        for _ in range(self.rng.randint(1, 3)):
            r = self.rng.random()
            at = self.rng.randint(0, len(out))
            if r < 0.2:
                del out[at:]  # truncated
            elif r < 0.35 and out:
                out[min(at, len(out) - 1)] = self.rng.randrange(256)
            elif r < 0.5:
                out[at:at] = self.pick(INVALID_UTF8)
            elif r < 0.6:
                out[at:at] = self.pick(HUGE_NUMBERS).encode()
            elif r < 0.7:
                out[at:at] = self.pick([b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"\x00",
                                        b"\n", b"\\u0000", b"\\ud800", b"NaN", b"-Infinity"])
            elif r < 0.8:
                end = self.rng.randint(at, len(out))
                out[at:at] = out[at:end]  # a slice repeated
            elif r < 0.9:
                end = self.rng.randint(at, min(len(out), at + 40))
                del out[at:end]
            else:
                out[at:at] = self.rng.randbytes(self.rng.randint(1, 16))
        return bytes(out)

    def nested(self, depth: int | None = None) -> bytes:
        d = depth or self.pick([100, 1000, 5000])
        return b"[" * d + b"]" * d if self.chance(0.5) else b'{"a":' * d + b"1" + b"}" * d

    def header_value(self) -> str | bytes:
        """A header value as a broken client might send: unicode, invalid UTF-8, long."""
        r = self.rng.random()
        if r < 0.4:
            return self.text(30).replace("\r", "").replace("\n", "")
        if r < 0.6:
            return self.rng.randbytes(self.rng.randint(0, 8)).replace(b"\r", b"").replace(
                b"\n", b"") + self.pick(INVALID_UTF8)
        if r < 0.75:
            return "x" * self.pick([100, 4000, 8000])
        if r < 0.9:
            return self.pick(["", " ", "\t", "null", "0", "-1", "*", ",", ";", "="])
        return self.pick(HUGE_NUMBERS)

    def path_segment(self) -> str:
        """A URL path segment: percent-encoded unicode and bad UTF-8, dot segments, long."""
        r = self.rng.random()
        if r < 0.3:
            return "".join(f"%{b:02X}" for b in self.text(6).encode("utf-8", "surrogatepass"))
        if r < 0.45:
            return "".join(f"%{b:02x}" for b in self.pick(INVALID_UTF8))
        if r < 0.55:
            return self.pick(["..", ".", "%2e%2e", "%2F", "%00", "%", "%zz", ";x=1", "~", "*"])
        if r < 0.65:
            return "a" * self.pick([300, 3000, 9000])
        return "".join(self.pick("abcXYZ019-_.~!$&'()*+,;=@") for _ in range(self.rng.randint(
            0, 12)))

    def query(self) -> str:
        pairs = []
        for _ in range(self.rng.randint(0, 6)):
            k = self.pick(["key", "id", "x", "a[]", "", "=", "%ff", "since", "top"])
            v = self.path_segment()
            pairs.append(self.pick([f"{k}={v}", k, f"{k}=", f"={v}", f"{k}={v}={v}"]))
        return "&".join(pairs)


def http_garbage(g: Gen, routes: Sequence[str]) -> tuple[bytes, bool]:
    """A request that breaks HTTP itself: (bytes, whether to half-close after sending).
    Whatever it is, the server must not answer 5xx nor go down."""
    route = g.pick(routes)
    r = g.rng.random()
    if r < 0.08:
        return g.rng.randbytes(g.rng.randint(1, 400)), True
    if r < 0.16:
        method = g.pick(["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND",
                         "get", "G E T", "", "POST\x00", "ÄÖÜ", "X" * 300, "PRI"])
        return http_request(method, route, body=g.rng.randbytes(g.rng.randint(0, 30))), False
    if r < 0.26:
        target = g.pick(["/" + "/".join(g.path_segment() for _ in range(g.rng.randint(1, 4))),
                         route + "?" + g.query(), "*", "//" + route, route + "/",
                         "http://x" + route,
                         route + "#frag", " " + route, route.upper(), "/" + "a" * 20_000,
                         route + "?" + "a=1&" * 3000])
        return http_request(g.pick(["GET", "POST", "HEAD"]), target), False
    if r < 0.36:
        many = [(f"X-H-{i}", g.text(10).replace("\r", "").replace("\n", ""))
                for i in range(g.pick([50, 127, 129, 500]))]
        return http_request("GET", route, many), False
    if r < 0.44:
        big = [("X-Big", "v" * g.pick([8_000, 8_200, 65_000, 200_000]))]
        return http_request("POST", route, big, b"{}"), False
    if r < 0.52:
        names: list[str | bytes] = [b"X-\xff\xfe", "Ünïcode", b"Bad Name", b"", b":",
                                    b"X\x00Y", "X-Ok"]
        name = g.pick(names)
        return http_request("GET", route, [(name, g.header_value())]), False
    if r < 0.6:
        version = g.pick([b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.1\x00", b"HTTP/9.9",
                          b"http/1.1", b"", b"HTTP/1.1 junk"])
        return http_request("GET", route, version=version), False
    if r < 0.72:
        body = g.rng.randbytes(g.rng.randint(0, 200))
        cl = g.pick(["-1", "abc", "99999999999999999999", " 5", "5, 5", "0x10", "1e3",
                     str(len(body) + 50), str(max(0, len(body) - 3)), "+5", ""])
        lengths: list[Header] = [("Content-Length", cl)]
        if g.chance(0.3):
            lengths.append(("Content-Length", str(len(body))))
        return http_request("POST", route, lengths, body, length=False), True
    if r < 0.84:
        body = g.pick([b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\nhello\r\n0\r\n\r\n",
                       b"5\r\nhel", b"FFFFFFFFFFFFFFFF\r\n", b"-1\r\n\r\n",
                       b"3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n",
                       b"5\r\nhelloXX\r\n0\r\n\r\n", b"0\r\n\r\n", b"1\r\n\xff\r\n0\r\n\r\n"])
        te = g.pick(["chunked", "gzip, chunked", "chunked, gzip", "identity", "xchunked",
                     "chunked\x00", "CHUNKED"])
        headers: list[Header] = [("Transfer-Encoding", te)]
        if g.chance(0.3):
            headers.append(("Content-Length", "5"))
        return http_request("POST", route, headers, body, length=False), True
    if r < 0.9:
        full = http_request("POST", route, [("Content-Type", "application/json")],
                            b'[{"device": "x"}]')
        return full[: g.rng.randint(1, len(full) - 1)], True  # the request stops mid-way
    if r < 0.96:
        return http_request("GET", route, [("Host", odd_host(g))]), False
    return http_request("POST", route, [("Expect", g.pick(["100-continue", "200-ok", "\xff"])),
                                        ("Content-Type", "application/json")], b"{}"), False


ODD_HOSTS = ["x:99999", "x:-1", "x:", "a:b:c", "[::1", "[::1]:99999", "::1", "[fe80::1%25eth0]",
             "é.example", "xn--", "a b", "", " ", "..", "x" * 300, "127.0.0.1:8080:1",
             "user@host", "%41", "host/path", "host?q", "host#f", "1.2.3.4.5", "[]", ":80"]


def odd_host(g: Gen) -> str | bytes:
    """A Host header a URL cannot be built from, or barely."""
    hosts: list[str | bytes] = [*ODD_HOSTS, g.text(10).replace("\r", "").replace("\n", ""),
                                f"x:{g.pick(['65536', '0', '00080', '1e3', '٣'])}", b"\xff\xfe"]
    return g.pick(hosts)


def host_corpus(routes: Sequence[str]) -> list[bytes]:
    """Every route with every odd Host header (a request line's authority included)."""
    out = [http_request("GET", route, [("Host", host)]) for route in routes
           for host in ODD_HOSTS]
    out += [http_request("GET", "http://x:99999" + route) for route in routes]
    return out


# ------------------------------------------------------------------- findings

@dataclass
class Findings:
    """Problems found by a fuzz test, grouped by kind, each with a reproducible example."""

    test: str
    kinds: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, example: str, keep: int = 2) -> None:
        """Count a problem of ``kind``; the first ``keep`` examples are shown."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        examples = self.kinds.setdefault(kind, [])
        if len(examples) < keep:
            examples.append(example[:1200])

    def check(self, service: Service | None = None, since: int = 0) -> None:
        """Fail the test listing every kind of problem and the service's log errors."""
        problems = service.problems(since) if service is not None else []
        noise = [p for p in problems if p.http_parse_error]
        problems = [p for p in problems if not p.http_parse_error]
        if noise:
            print(f"{len(noise)} aiohttp records of unparsable requests (not failures), e.g. "
                  f"{noise[0].exception}")
        if problems:
            distinct: dict[str, Problem] = {}
            for p in problems:
                distinct.setdefault(p.exception + p.where or p.head[24:120], p)
            for p in distinct.values():
                n = sum(1 for q in problems if (q.exception + q.where or q.head[24:120])
                        == (p.exception + p.where or p.head[24:120]))
                self.add("the service logged an error or traceback", f"{n}x {p}", keep=8)
        if service is not None and not service.alive():
            self.add("the service died", service.tail())
        if not self.kinds:
            return
        out = [reproduce(self.test), f"{len(self.kinds)} kind(s) of problem:"]
        for kind, examples in self.kinds.items():
            out.append(f"- {kind} ({self.counts[kind]} times), e.g.:")
            out.extend("    " + e.replace("\n", "\n    ") for e in examples)
        pytest.fail("\n".join(out), pytrace=False)


def json_error_problem(answer: Answer) -> str | None:
    """What is wrong with an error answer that should be ``{"error": CODE, "message": TEXT}``
    (None: nothing)."""
    ctype = (answer.header("content-type") or "").split(";")[0].strip()
    if ctype != "application/json":
        return f"Content-Type {ctype!r}, not application/json"
    try:
        body = json.loads(answer.body)
    except ValueError:
        return "the body is not JSON"
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    if not (isinstance(body.get("error"), str) and body["error"]):
        return "no 'error' code in the body"
    if not (isinstance(body.get("message"), str) and body["message"]):
        return "no 'message' in the body"
    return None


_RUN = re.compile(rb"(.)\1{15,}", re.DOTALL)


def show(request: bytes, limit: int = 600) -> str:
    """``request`` for a report: runs of one byte shortened (``<'a' x 9000>``), cut at
    ``limit`` bytes."""
    short = _RUN.sub(lambda m: b"<%r x %d>" % (m.group(1), len(m.group(0))), request)
    text = repr(short[:limit])
    return text + (f" ... ({len(request)} bytes)" if len(short) > limit else "")
