"""Play a simulated race into ingest over HTTP, in compressed time.

The demo copies the race folder with its start moved to now (``shifted_race``), so the
processors and the pages see a race that is happening today. ``Player`` then sends the
simulation's fixes as JSON batches to ingest's ``POST /v1/pings``: fix times keep their
offsets from the start (race time), and a fix is sent once its arrival offset divided by
the speed has passed on the wall clock. The processors' clock is the later of the wall
clock and the latest fix, so the race runs ahead of the wall clock by the speed-up.

The player behaves as the devices' trackers do when ingest does not take their fixes
(Kafka away: 503 with Retry-After; ingest down: no answer): each device keeps what was
not accepted in a bounded buffer and sends it again, oldest first, after Retry-After or
a growing pause, for as long as it plays. ``Progress`` says whether it is waiting and
for what; the changes are logged (``zegama_live.demo_player``).

Race control's part is planned as ``Incident``s (the ridge's weather alert) and issued
as the control page does it: a ``command`` on the broadcaster's websocket with a
race-control token (``send_command``), so the demo exercises that path too.
"""

from __future__ import annotations

import asyncio
import heapq
import http.client
import logging
import math
import random
import re
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import orjson
import websockets

from race_engine.fixes import encode_fix
from race_engine.model import Fix, Race

_START_LINE = re.compile(r'^start\s*=\s*"[^"]*"\s*$', re.MULTILINE)
log = logging.getLogger(__name__)


class PlayError(RuntimeError):
    """A race-control command was refused or could not be delivered; the message says
    why, and ``retry`` whether sending it again later may work (Kafka or the broadcaster
    away) or not (a refusal)."""

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


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


MAX_BUFFER = 5_000  # fixes a device keeps while ingest does not take them (a tracker's memory)
MAX_RETRY_AFTER_S = 300.0  # a longer Retry-After is taken as this
MIN_RETRY_S = 0.1  # even "Retry-After: 0" waits this long, so a refusing ingest is not flooded


@dataclass
class Progress:
    """What has been played so far, and whether ingest is taking fixes."""

    sent: int = 0  # fixes ingest accepted
    rejected: int = 0  # fixes ingest refused one by one (202 or 422 with reasons): not resent
    race_ms: int = 0  # race time of the latest arrival played (ms since the start)
    first_refusal: str = ""  # why ingest refused the first refused fix
    buffered: int = 0  # fixes waiting in the devices' buffers
    dropped: int = 0  # the oldest fixes of full buffers, dropped to make room
    discarded: int = 0  # fixes of requests ingest refused as malformed (4xx): not resent
    waiting_for: str = ""  # "Kafka" (ingest answers 503), "ingest" (no answer, 429, 408,
    #                        other 5xx), "" while ingest takes fixes
    waiting_why: str = ""  # the latest failed attempt's, e.g. "ingest answers 503"
    waiting_s: float = 0.0  # how long the devices have been waiting
    retries: int = 0  # failed attempts, each sent again later


@dataclass(frozen=True)
class Answer:
    """Ingest's answer to one request; ``status`` 0 when there was none (``error`` says why)."""

    status: int
    body: bytes = b""
    retry_after_s: float | None = None  # the Retry-After header, in seconds
    error: str = ""

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; empty when it is not one."""
        try:
            data = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}


class Ingest:
    """A keep-alive HTTP connection to ingest's JSON batch API."""

    def __init__(self, url: str, key: str, timeout_s: float = 30.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.key = key
        self.timeout_s = timeout_s
        self.conn: http.client.HTTPConnection | None = None

    def post(self, fixes: list[dict[str, object]]) -> Answer:
        """Send one batch and return ingest's answer, whatever it is. A connection that
        ingest closed while idle is replaced and the batch sent on the new one; a refused,
        reset or timed-out connection is an ``Answer`` with status 0 saying why."""
        body = orjson.dumps(fixes)
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        for attempt in range(2):
            reused = self.conn is not None
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port,
                                                           timeout=self.timeout_s)
                self.conn.request("POST", "/v1/pings", body=body, headers=headers)
                answer = self.conn.getresponse()
                data = answer.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and attempt == 0 and isinstance(exc, _STALE):
                    continue  # closed by ingest while idle (keep-alive timeout): once more
                return Answer(0, error=self._why(exc))
            return Answer(answer.status, data, retry_after(answer.getheader("Retry-After")))
        raise AssertionError("unreachable")  # pragma: no cover

    def _why(self, exc: BaseException) -> str:
        where = f"{self.host}:{self.port}"
        if isinstance(exc, ConnectionRefusedError):
            return f"connection to {where} refused"
        if isinstance(exc, http.client.RemoteDisconnected):
            return f"{where} closed the connection without answering"
        if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            return f"connection to {where} reset"
        if isinstance(exc, TimeoutError):
            return f"no answer from {where} within {self.timeout_s:g} s"
        return f"{where}: {exc or type(exc).__name__}"

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


_STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)  # incl. RemoteDisconnected


def retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """A Retry-After header in seconds (delay-seconds or an HTTP date), at most
    ``MAX_RETRY_AFTER_S``; None when absent or unreadable."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now_s is None else now_s)
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S) if math.isfinite(seconds) else None


@dataclass(frozen=True)
class Backoff:
    """How long a device waits after its ``failures``-th failed attempt in a row when
    ingest gave no Retry-After: doubling from ``first_s`` up to ``max_s``, with jitter."""

    first_s: float = 0.5
    max_s: float = 15.0

    def delay_s(self, failures: int) -> float:
        top = min(self.max_s, self.first_s * 2.0 ** min(max(0, failures - 1), 30))
        return top * random.uniform(0.5, 1.0)


class Buffers:
    """Each device's fixes not yet accepted, oldest first, at most ``max_per_device`` of
    them (a full buffer drops its oldest fix). Every fix gets a sequence number as it
    is added, so a batch is the oldest fixes of all devices together."""

    def __init__(self, max_per_device: int = MAX_BUFFER) -> None:
        if max_per_device < 1:
            raise ValueError(f"a device's buffer must hold at least 1 fix, got {max_per_device}")
        self.max_per_device = max_per_device
        self.devices: dict[str, deque[tuple[int, dict[str, object]]]] = {}
        self.next_seq = 0
        self.pending = 0
        self.dropped = 0

    def add(self, fix: dict[str, object]) -> None:
        queue = self.devices.setdefault(str(fix.get("device")), deque())
        if len(queue) >= self.max_per_device:
            queue.popleft()
            self.dropped += 1
            self.pending -= 1
        queue.append((self.next_seq, fix))
        self.next_seq += 1
        self.pending += 1

    def oldest(self, n: int) -> list[tuple[int, dict[str, object]]]:
        """The ``n`` oldest fixes (sequence number, fix), left in the buffers."""
        heap = [(queue[0][0], device, 0) for device, queue in self.devices.items() if queue]
        heapq.heapify(heap)
        out: list[tuple[int, dict[str, object]]] = []
        while heap and len(out) < n:
            _, device, i = heapq.heappop(heap)
            queue = self.devices[device]
            out.append(queue[i])
            if i + 1 < len(queue):
                heapq.heappush(heap, (queue[i + 1][0], device, i + 1))
        return out

    def remove(self, batch: list[tuple[int, dict[str, object]]]) -> None:
        """Take out ``batch``, which ``oldest`` gave (the front of each device's buffer)."""
        for _, fix in batch:
            self.devices[str(fix.get("device"))].popleft()
        self.pending -= len(batch)


def _kind(status: int) -> str:
    """What to do with a batch ingest answered ``status``: keep (accepted or refused fix by
    fix, with reasons), retry (Kafka or ingest not taking fixes now), or drop (malformed)."""
    if 200 <= status < 300 or status == 422:
        return "keep"
    if status in (0, 408, 429) or status >= 500:
        return "retry"
    return "drop"


class _Sender:
    """The devices' side of the requests: what a failure means and how long to wait."""

    def __init__(self, ingest: Ingest, progress: Progress, buffers: Buffers, backoff: Backoff,
                 clock: Callable[[], float]) -> None:
        self.ingest, self.progress, self.buffers = ingest, progress, buffers
        self.backoff, self.clock = backoff, clock
        self.retry_at = -math.inf
        self.failures = 0
        self.since = 0.0  # when the devices began waiting
        self.dropped_before = 0  # buffers' drops when they began waiting
        self.backlog_end: int | None = None  # after an outage: fixes below this seq are its backlog
        self.backlog_sent = 0
        self.backlog_began = 0.0
        self.logged: set[int] = set()  # statuses of malformed requests already logged

    def send(self, max_batch: int) -> None:
        batch = self.buffers.oldest(max_batch)
        answer = self.ingest.post([fix for _, fix in batch])
        kind = _kind(answer.status)
        if kind == "retry":
            self._failed(answer)
            return
        if self.progress.waiting_for:
            self._back()
        self.buffers.remove(batch)
        if kind == "drop":
            self.progress.discarded += len(batch)
            if answer.status not in self.logged:
                self.logged.add(answer.status)
                log.error("ingest refused a request of the player as malformed: %d %s; its "
                          "%d fixes are dropped (further %d answers are counted, not logged)",
                          answer.status, answer.body[:500].decode(errors="replace"),
                          len(batch), answer.status)
            self._backlog_progress(batch, set(range(len(batch))))
            return
        body = answer.json()
        refused = [r for r in body.get("rejected") or [] if isinstance(r, dict)]
        accepted = body.get("accepted", len(batch) if answer.status != 422 else 0)
        if not isinstance(accepted, int):
            accepted = 0 if answer.status == 422 else len(batch)
        accepted = min(len(batch), max(0, accepted))
        self.progress.sent += accepted
        self.progress.rejected += len(batch) - accepted
        if len(batch) > accepted and not self.progress.first_refusal:
            self.progress.first_refusal = (str(refused[0].get("reason", refused[0])) if refused
                                           else f"answer {answer.status}")
        self._backlog_progress(batch, {r.get("index") for r in refused})

    def _failed(self, answer: Answer) -> None:
        now = self.clock()
        self.failures += 1
        self.progress.retries += 1
        what = "Kafka" if answer.status == 503 else "ingest"
        why = answer.error or f"ingest answers {answer.status}"
        wait = answer.retry_after_s
        if wait is None:
            wait = self.backoff.delay_s(self.failures)
        self.retry_at = now + max(MIN_RETRY_S, wait)
        if what != self.progress.waiting_for:
            if not self.progress.waiting_for:
                self.since = now
                self.dropped_before = self.buffers.dropped
            log.warning("waiting for %s (%s): the devices keep their fixes and send them "
                        "again, oldest first", what, why)
        self.progress.waiting_for, self.progress.waiting_why = what, why

    def _back(self) -> None:
        now = self.clock()
        log.info("ingest takes fixes again after %.0f s waiting for %s: sending the %s "
                 "buffered fixes", now - self.since, self.progress.waiting_for,
                 f"{self.buffers.pending:,}")
        if self.backlog_end is None:
            self.backlog_sent = 0
            self.backlog_began = now
        self.backlog_end = self.buffers.next_seq
        self.progress.waiting_for = self.progress.waiting_why = ""
        self.progress.waiting_s = 0.0
        self.failures = 0
        self.retry_at = -math.inf

    def _backlog_progress(self, batch: list[tuple[int, dict[str, object]]],
                          refused: set[object]) -> None:
        """Count the fixes of the last outage's backlog sent; say so when all are."""
        end = self.backlog_end
        if end is None:
            return
        self.backlog_sent += sum(1 for i, (seq, _) in enumerate(batch)
                                 if seq < end and i not in refused)
        if self.buffers.pending and batch and batch[-1][0] < end - 1:
            return
        dropped = self.buffers.dropped - self.dropped_before
        lost = f"; {dropped:,} dropped from full buffers" if dropped else ""
        log.info("buffered fixes sent: %s, in %.1f s%s", f"{self.backlog_sent:,}",
                 self.clock() - self.backlog_began, lost)
        self.backlog_end = None


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


def play(items: Iterable[tuple[float, dict[str, object], int]], ingest: Ingest,
         progress: Progress, *, max_batch: int = 1000, max_buffer: int = MAX_BUFFER,
         backoff: Backoff | None = None, tick_s: float = 0.5,
         clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], object] = time.sleep) -> Iterator[Progress]:
    """Send ``schedule``'s fixes on time in batches, as the devices' trackers would;
    yield the progress after each request, and every ``tick_s`` while waiting for ingest.

    Each fix goes into its device's buffer when it is due; a request carries the oldest
    buffered fixes of all devices, at most ``max_batch``, and leaves the buffers only
    once ingest answered it: accepted or refused fix by fix (202, 422), or refused as
    malformed (another 4xx: logged once per status, its fixes dropped and counted).
    A 503, 429, 408, other 5xx or no answer at all (refused, reset, timed out) keeps
    them buffered and sends them again after the answer's Retry-After or ``backoff``,
    while new fixes join the buffers (``max_buffer`` each, dropping the oldest). Ends
    when every fix is played and no buffer holds any, however long ingest is away.
    """
    buffers = Buffers(max_buffer)
    sender = _Sender(ingest, progress, buffers, backoff or Backoff(), clock)
    upcoming = iter(items)
    began = clock()
    nxt = next(upcoming, None)
    tick = False  # slept while waiting: show the progress even without a request
    while True:
        now = clock()
        while nxt is not None and began + nxt[0] <= now:
            buffers.add(nxt[1])
            progress.race_ms = nxt[2]
            nxt = next(upcoming, None)
        if buffers.pending and sender.retry_at <= now:
            sender.send(max_batch)
            _tally(progress, buffers, sender, clock)
            tick = False
            yield progress
            continue
        if tick:
            _tally(progress, buffers, sender, clock)
            tick = False
            yield progress
            continue
        if nxt is None and not buffers.pending:
            _tally(progress, buffers, sender, clock)
            return
        wake = math.inf if nxt is None else began + nxt[0]
        if buffers.pending:
            wake = min(wake, sender.retry_at)
        if progress.waiting_for:
            wake = min(wake, now + tick_s)
        sleep(max(0.0, wake - now))
        tick = bool(progress.waiting_for)


def _tally(progress: Progress, buffers: Buffers, sender: _Sender,
           clock: Callable[[], float]) -> None:
    progress.buffered, progress.dropped = buffers.pending, buffers.dropped
    progress.waiting_s = clock() - sender.since if progress.waiting_for else 0.0


def progress_line(p: Progress, board: dict[str, Any] | None,
                  alerts: dict[str, Any] | None) -> str:
    """One line of the demo's progress: race clock, whether the devices are waiting for
    Kafka or ingest (and how many fixes they hold), fixes sent (refused, dropped),
    leader, finishers, open alerts. ``board`` and ``alerts`` are the feed's answers,
    None when it did not answer (shown as ``?``; its board is null before the first
    snapshot).
    """
    s = max(0, p.race_ms // 1000)
    clock = f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    standings = None if board is None else board.get("board")
    finished = "?" if standings is None else str(len(standings.get("finishers") or []))
    leader = "-" if standings is None else str(standings.get("leader") or "-")
    open_alerts = "?" if alerts is None else str(len(alerts.get("alerts", [])))
    waiting = ""
    if p.waiting_for:
        waiting = (f"  waiting for {p.waiting_for} {p.waiting_s:.0f} s ({p.waiting_why}), "
                   f"{p.buffered:,} fixes buffered")
    losses = []
    if p.rejected:
        losses.append(f"{p.rejected:,} refused: {p.first_refusal}")
    if p.dropped:
        losses.append(f"{p.dropped:,} dropped from full buffers")
    if p.discarded:
        losses.append(f"{p.discarded:,} dropped as malformed requests")
    lost = f" ({'; '.join(losses)})" if losses else ""
    return (f"race {clock}{waiting}  fixes sent {p.sent:,}{lost}  leader bib {leader}  "
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
            and message), or the broadcaster could not be reached, did not answer within
            ``timeout_s`` or could not publish it (then with ``retry``).
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
                                    f"{frame.get('message')}",
                                    retry=frame.get("code") == "publish_failed")
            raise PlayError(f"the broadcaster closed the connection before answering {what}",
                            retry=True)
    except TimeoutError:
        raise PlayError(f"the broadcaster at {ws_url} did not answer {what} within "
                        f"{timeout_s:g} s", retry=True) from None
    except websockets.InvalidURI as exc:
        raise PlayError(f"the broadcaster's websocket address {ws_url} is not valid ({exc})") \
            from exc
    except (OSError, websockets.InvalidHandshake, websockets.ConnectionClosed) as exc:
        raise PlayError(f"the broadcaster's websocket at {ws_url} failed ({exc}); "
                        "is it running?", retry=True) from exc


def issue_command(ws_url: str, token: str, race: str,
                  command: dict[str, object]) -> dict[str, Any]:
    """``send_command`` from synchronous code (the player's loop)."""
    return asyncio.run(send_command(ws_url, token, race, command))


__all__ = ["MAX_BUFFER", "Answer", "Backoff", "Buffers", "Incident", "Incidents", "Ingest",
           "PlayError", "Progress", "issue_command", "plan_incidents", "play",
           "progress_line", "retry_after", "schedule", "send_command", "shift",
           "shifted_race"]
