"""Play a simulated race into ingest over HTTP, in compressed time.

The demo copies the race folder with its start moved to now (``shifted_race``), so the
processors and the pages see a race that is happening today. ``Player`` then sends the
simulation's fixes as JSON batches to ingest's ``POST /v1/pings``: fix times keep their
offsets from the start (race time), and a fix is sent once its arrival offset divided by
the speed has passed on the wall clock. The processors' clock is the later of the wall
clock and the latest fix, so the race runs ahead of the wall clock by the speed-up.

Race control's part is planned as ``Incident``s (the ridge's weather alert) and issued
as the control page does it: a ``command`` on the broadcaster's websocket with a
race-control token (``send_command``), so the demo exercises that path too.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import orjson
import websockets

from race_engine.fixes import encode_fix
from race_engine.model import Fix, Race

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


def progress_line(p: Progress, board: dict[str, Any] | None,
                  alerts: dict[str, Any] | None) -> str:
    """One line of the demo's progress: race clock, fixes sent (and refused), leader,
    finishers, open alerts. ``board`` and ``alerts`` are the feed's answers, None when
    it did not answer (shown as ``?``; its board is null before the first snapshot).
    """
    s = max(0, p.race_ms // 1000)
    clock = f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    standings = None if board is None else board.get("board")
    finished = "?" if standings is None else str(len(standings.get("finishers") or []))
    leader = "-" if standings is None else str(standings.get("leader") or "-")
    open_alerts = "?" if alerts is None else str(len(alerts.get("alerts", [])))
    refused = f" ({p.rejected:,} refused: {p.first_refusal})" if p.rejected else ""
    return (f"race {clock}  fixes sent {p.sent:,}{refused}  leader bib {leader}  "
            f"finished {finished}  open alerts {open_alerts}")


@dataclass(frozen=True)
class Incident:
    """A race-control command the demo issues once the race clock reaches ``at_ms``."""

    at_ms: int  # race time, ms since the start
    command: dict[str, object]  # the fields of a websocket command (docs/websocket.md)
    says: str  # what the demo prints when it is issued


def plan_incidents(race: Race, weather_at_ms: int) -> list[Incident]:
    """The demo's race-control script: the weather alert on for the race's first danger
    zone at race time ``weather_at_ms``; nothing for a race without danger zones.

    Raises:
        ValueError: ``weather_at_ms`` is negative.
    """
    if weather_at_ms < 0:
        raise ValueError(f"the weather alert's race time must be >= 0 ms, got {weather_at_ms}")
    if not race.danger_zones:
        return []
    zone = race.danger_zones[0]
    return [Incident(weather_at_ms, {"op": "weather", "zone": zone.id, "on": True,
                                     "reason": "storm forecast for the ridge (demo)"},
                     f"weather alert on for {zone.name}")]


class Incidents:
    """The incidents not issued yet, handed out in race-time order as the race goes by."""

    def __init__(self, planned: Iterable[Incident]) -> None:
        self.waiting = sorted(planned, key=lambda i: i.at_ms)

    def due(self, race_ms: int) -> list[Incident]:
        """The incidents whose time has come by ``race_ms``; each is handed out once."""
        n = 0
        while n < len(self.waiting) and self.waiting[n].at_ms <= race_ms:
            n += 1
        out, self.waiting = self.waiting[:n], self.waiting[n:]
        return out


async def send_command(ws_url: str, token: str, race: str, command: dict[str, object],
                       timeout_s: float = 15.0) -> dict[str, Any]:
    """Issue one race-control command as the control page does: subscribe to
    ``control:<race>`` with ``token`` on the broadcaster's websocket, send the command
    with an id, and wait for its ack. Returns the ``control.v1`` record as published.

    Raises:
        PlayError: the token or the command was refused (the broadcaster's error code
            and message), or the broadcaster could not be reached or did not answer
            within ``timeout_s``.
    """
    cid = str(command.get("id") or f"c-demo-{uuid.uuid4().hex[:12]}")
    channel = f"control:{race}"
    what = f"the {command.get('op')} command"
    try:
        async with asyncio.timeout(timeout_s), \
                websockets.connect(ws_url, compression=None, max_size=None) as ws:
            await ws.send(orjson.dumps({"op": "subscribe", "channel": channel,
                                        "token": token}).decode())
            await ws.send(orjson.dumps({"op": "command", "race": race,
                                        "command": {**command, "id": cid}}).decode())
            async for message in ws:  # skips the snapshot, updates and heartbeats
                frame = orjson.loads(message)
                if frame.get("type") == "ack" and frame.get("id") == cid:
                    return dict(frame["command"])
                if frame.get("type") == "error" and (frame.get("id") == cid
                                                     or frame.get("channel") == channel):
                    raise PlayError(f"the broadcaster refused {what}: {frame.get('code')}: "
                                    f"{frame.get('message')}")
            raise PlayError(f"the broadcaster closed the connection before answering {what}")
    except TimeoutError:
        raise PlayError(f"the broadcaster at {ws_url} did not answer {what} within "
                        f"{timeout_s:g} s") from None
    except (OSError, websockets.InvalidURI, websockets.InvalidHandshake,
            websockets.ConnectionClosed) as exc:
        raise PlayError(f"the broadcaster's websocket at {ws_url} failed ({exc}); "
                        "is it running?") from exc


def issue_command(ws_url: str, token: str, race: str,
                  command: dict[str, object]) -> dict[str, Any]:
    """``send_command`` from synchronous code (the player's loop)."""
    return asyncio.run(send_command(ws_url, token, race, command))


__all__ = ["Incident", "Incidents", "Ingest", "PlayError", "Progress", "issue_command",
           "plan_incidents", "play", "progress_line", "schedule", "send_command", "shift",
           "shifted_race"]
