"""Play a simulated race into ingest over HTTP, in compressed time.

The demo copies the race folder with its start moved to now (``shifted_race``), so the
processors and the pages see a race that is happening today. ``Player`` then sends the
simulation's fixes as JSON batches to ingest's ``POST /v1/pings``: fix times keep their
offsets from the start (race time), and a fix is sent once its arrival offset divided by
the speed has passed on the wall clock. The processors' clock is the later of the wall
clock and the latest fix, so the race runs ahead of the wall clock by the speed-up.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import orjson

from race_engine.fixes import encode_fix
from race_engine.model import Fix, Race
from zegama_live.topics import CONTROL

_START_LINE = re.compile(r'^start\s*=\s*"[^"]*"\s*$', re.MULTILINE)


class PlayError(RuntimeError):
    """Ingest refused the demo's fixes or could not be reached; the message says why."""


def shifted_race(src: Path, dest_root: Path, race_id: str, start_ms: int,
                 timezone: str) -> Path:
    """Copy the race folder ``src`` to ``dest_root/race_id`` with its start at ``start_ms``,
    written in the race's ``timezone`` (race.toml's offset must match it).

    Raises:
        ValueError: race.toml has no ``start = "..."`` line to move.
    """
    dest = dest_root / race_id
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    toml = dest / "race.toml"
    text = toml.read_text()
    when = datetime.fromtimestamp(start_ms // 1000, ZoneInfo(timezone)).isoformat()
    new, n = _START_LINE.subn(f'start = "{when}"', text, count=1)
    if n != 1:
        raise ValueError(f"{toml}: no 'start = \"...\"' line under [race]; add one")
    toml.write_text(new)
    return dest


def shift(fix: Fix, offset_ms: int) -> Fix:
    """``fix`` with its time moved by ``offset_ms``."""
    return Fix(fix.device, fix.t + offset_ms, fix.lat, fix.lon, fix.ele, fix.acc, fix.bat,
               fix.sos)


@dataclass
class Progress:
    """What has been played so far."""

    sent: int = 0
    rejected: int = 0
    race_ms: int = 0  # race time of the latest arrival played (ms since the start)
    first_refusal: str = ""  # why ingest refused the first refused fix


class Ingest:
    """A keep-alive HTTP connection to ingest's JSON batch API."""

    def __init__(self, url: str, key: str, timeout_s: float = 30.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.key = key
        self.timeout_s = timeout_s
        self.conn: http.client.HTTPConnection | None = None

    def post(self, fixes: list[dict[str, object]]) -> dict[str, Any]:
        """Send one batch; return ingest's answer. Retries a 503 (Kafka slow) after a pause.

        Raises:
            PlayError: a refused key, a malformed batch, or ingest not answering.
        """
        body = orjson.dumps(fixes)
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        for _ in range(10):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port,
                                                           timeout=self.timeout_s)
                self.conn.request("POST", "/v1/pings", body=body, headers=headers)
                answer = self.conn.getresponse()
                data = answer.read()
            except OSError as exc:
                self.close()
                raise PlayError(f"ingest at {self.host}:{self.port} did not answer ({exc}); "
                                "is it running?") from exc
            if answer.status == 503:
                time.sleep(float(answer.getheader("Retry-After") or 1))
                continue
            if answer.status == 422:  # every fix refused: counted, the race goes on
                return dict(orjson.loads(data))
            if answer.status >= 400:
                raise PlayError(f"ingest answered {answer.status}: {data[:300]!r}")
            return dict(orjson.loads(data)) if data else {}
        raise PlayError("ingest kept answering 503 (Kafka not taking records)")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def schedule(pings: Iterator[tuple[Fix, int]], race: Race, start_ms: int,
             speed: float) -> Iterator[tuple[float, dict[str, object], int]]:
    """(wall seconds after play start, device JSON of the shifted fix, race ms) per fix.

    Fixes that arrive before the start go at once; the rest when their arrival offset
    divided by ``speed`` has passed.
    """
    offset = start_ms - race.start_ms
    for fix, arrival in pings:
        race_ms = arrival - race.start_ms
        yield max(0.0, race_ms / 1000 / speed), encode_fix(shift(fix, offset)), race_ms


def play(items: Iterator[tuple[float, dict[str, object], int]], ingest: Ingest,
         progress: Progress, *, max_batch: int = 1000, clock: Any = time.monotonic,
         sleep: Any = time.sleep) -> Iterator[Progress]:
    """Send ``schedule``'s fixes on time in batches; yield the progress after each batch."""
    began = clock()
    batch: list[dict[str, object]] = []
    for due, fix, race_ms in items:
        wait = due - (clock() - began)
        if batch and (wait > 0 or len(batch) >= max_batch):
            yield _send(ingest, batch, progress)
            batch = []
            wait = due - (clock() - began)
        if wait > 0:
            sleep(wait)
        batch.append(fix)
        progress.race_ms = race_ms
    if batch:
        yield _send(ingest, batch, progress)


def _send(ingest: Ingest, batch: list[dict[str, object]], progress: Progress) -> Progress:
    answer = ingest.post(batch)
    accepted = int(answer.get("accepted", len(batch)))
    progress.sent += accepted
    progress.rejected += len(batch) - accepted
    refused = answer.get("rejected") or []
    if refused and not progress.first_refusal:
        progress.first_refusal = str(refused[0].get("reason", refused[0]))
    return progress


def control_command(race: str, op: str, **fields: object) -> dict[str, object]:
    """A control.v1 command (docs/streams.md) issued now by the demo."""
    return {"v": 1, "race": race, "id": f"c-demo-{uuid.uuid4().hex[:12]}", "op": op,
            "by": "control:demo", "at_ms": int(time.time() * 1000), **fields}


async def send_control(bootstrap: str, command: dict[str, object]) -> None:
    """Publish one race-control command to control.v1 (key: race)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(CONTROL, key=str(command["race"]).encode(),
                                     value=orjson.dumps(command))
    finally:
        await producer.stop()


def publish_control(bootstrap: str, command: dict[str, object]) -> None:
    """``send_control`` from synchronous code."""
    asyncio.run(send_control(bootstrap, command))


__all__ = ["Ingest", "PlayError", "Progress", "control_command", "play", "publish_control",
           "schedule", "send_control", "shift", "shifted_race"]
