"""What the chaos suite runs and watches: services as child processes that can be killed
with SIGKILL and started again, spectators that move between broadcasters as the pages
do, and a player whose devices buffer and retry (the demo's)."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import websockets
from broadcast_client import unbatched

from zegama_live.demo_player import Answer, Ingest
from zegama_live.service import stop_child

ROOT = Path(__file__).resolve().parents[2]
Json = dict[str, Any]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


class Service:
    """One ``zegama-live`` command as a child process; ``kill`` is ``kill -9``."""

    def __init__(self, name: str, args: list[str], health: str, logs: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name, self.args, self.health, self.logs = name, args, health, logs
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Service:
        self.starts += 1
        log = self.logs / f"{self.name}.{self.starts}.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "zegama_live.cli", *self.args], cwd=ROOT, stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"})
        return self

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def ready(self, timeout_s: float = 120.0) -> float:
        """Wait for /healthz 200; return how long it took."""
        began = time.monotonic()
        while not await asyncio.to_thread(healthy, self.health):
            if not self.alive():
                raise AssertionError(f"{self.name} exited: {self.tail()}")
            if time.monotonic() - began > timeout_s:
                raise AssertionError(f"{self.name}: no 200 from {self.health}: {self.tail()}")
            await asyncio.sleep(0.3)
        return time.monotonic() - began

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_child(self.proc, grace_s=15)

    def tail(self) -> str:
        logs = sorted(self.logs.glob(f"{self.name}.*.log"))
        return logs[-1].read_text(errors="replace")[-3000:] if logs else ""


class RecordingIngest(Ingest):
    """The player's HTTP client, remembering every fix ingest acknowledged (2xx)."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(url, key, timeout_s=20.0)
        self.acked: set[tuple[str, int]] = set()
        self.answers: dict[int, int] = {}

    def post(self, fixes: list[dict[str, object]]) -> Answer:
        answer = super().post(fixes)
        self.answers[answer.status] = self.answers.get(answer.status, 0) + 1
        if 200 <= answer.status < 300:
            refused = {r.get("index") for r in answer.json().get("rejected") or []
                       if isinstance(r, dict)}
            self.acked.update((str(f["device"]), int(str(f["ts"])))
                              for i, f in enumerate(fixes) if i not in refused)
        return answer


@dataclass
class Spectator:
    """A standings subscriber that, like the pages, reconnects (to the next broadcaster)
    and resumes with ``since`` when its connection ends; it notes every frame's arrival
    and any seq below the one it held."""

    urls: list[str]
    race: str
    first: int = 0
    seq: int = -1
    arrivals: list[float] = field(default_factory=list)
    backwards: list[tuple[int, int]] = field(default_factory=list)  # (held, received)
    reconnects: int = 0
    ahead: int = 0
    errors: list[str] = field(default_factory=list)

    async def run(self) -> None:
        at = self.first
        while True:
            url = self.urls[at % len(self.urls)]
            try:
                async with websockets.connect(url, max_size=None, open_timeout=5) as ws:
                    # The whole board, as the spectator page follows it: a frame each
                    # standings window in which any runner moved.
                    request: Json = {"op": "subscribe", "channel": f"standings:{self.race}"}
                    if self.seq >= 0:
                        request["since"] = self.seq
                    await ws.send(orjson.dumps(request).decode())
                    async for raw in ws:
                        self._receive(orjson.loads(raw))
            except (OSError, websockets.ConnectionClosed, websockets.InvalidHandshake,
                    TimeoutError):
                pass
            self.reconnects += 1
            at += 1  # the next broadcaster, as a load balancer would pick another
            await asyncio.sleep(0.5)

    def _receive(self, message: Json) -> None:
        for frame in unbatched(message):
            kind = frame.get("type")
            if kind in ("snapshot", "update"):
                if frame["seq"] < self.seq:
                    self.backwards.append((self.seq, frame["seq"]))
                self.seq = max(self.seq, frame["seq"])
                self.arrivals.append(time.monotonic())
            elif kind == "error":
                if frame.get("code") == "ahead":
                    self.ahead += 1
                self.errors.append(f"{frame.get('code')}: {frame.get('message')}")


async def watch_standings(bootstrap: str, race: str, arrivals: list[float]) -> None:
    """Note when each of ``race``'s standings.v1 records arrives (the processors' side
    of a stall, before any broadcaster)."""
    from aiokafka import AIOKafkaConsumer

    from zegama_live.topics import STANDINGS

    consumer = AIOKafkaConsumer(STANDINGS, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="latest", enable_auto_commit=False)
    await consumer.start()
    mark = f'"race":"{race}"'.encode()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            now = time.monotonic()
            arrivals += [now for records in batch.values() for r in records
                         if mark in (r.value or b"")]
    finally:
        await consumer.stop()


def longest_gap(arrivals: list[float], start: float, end: float) -> float:
    """The longest time without a frame within [start, end]."""
    inside = [t for t in arrivals if start <= t <= end]
    points = [start, *inside, end]
    return max(b - a for a, b in itertools.pairwise(points))
