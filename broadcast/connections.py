"""The websocket side: connections, requests, the fan-out tick, heartbeats, slow clients.

The protocol is docs/websocket.md. Frames are encoded once per channel by the hub; this
module only moves those bytes, with no task per client: after each tick (and each
request, heartbeat) one pass writes every client's waiting frames as one websocket
message, framed once per distinct list of frames (``broadcast.wire``), straight to the
client's transport. A client whose transport still holds more than ``ws_write_limit``
bytes the kernel has not taken is skipped: its frames wait in its outbox (where newer
ones supersede them), so a client that does not read costs bounded memory and stalls
nobody. A client whose oldest waiting frame is older than ``slow_client_s`` is closed
with 4008. Shutting down closes every client with 1001 and a reason that says to
reconnect and resume with ``since``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from broadcast.channels import ChannelError, parse_name
from broadcast.commands import CommandError, Publisher, build_command
from broadcast.credentials import Credentials
from broadcast.hub import Hub, Subscriber
from broadcast.metrics import BroadcastMetrics
from broadcast.settings import BroadcastSettings
from broadcast.wire import Wire, message

log = logging.getLogger("broadcast.websocket")
SLOW = 4008
GOING_AWAY = 1001
SHUTDOWN_REASON = "broadcaster shutting down: reconnect and subscribe with since=<last seq> " \
                  "to resume"
MAX_MESSAGE = 64 * 1024
IDLE_TICK_S = 1.0  # a tick at least this often, for slow clients and idle channels


class Connection(Subscriber):
    """One client: the hub's subscriber plus its socket."""

    def __init__(self, ws: ServerConnection) -> None:
        super().__init__()
        self.ws = ws
        self.closing = False

    def reply(self, message: dict[str, Any]) -> None:
        """Queue a reply; the server writes it when the request is handled."""
        self.outbox.push(None, orjson.dumps(message), time.monotonic())

    def error(self, code: str, message: str, channel: str | None = None,
              command_id: str | None = None) -> None:
        """Queue an error frame; ``channel`` or ``command_id`` say which request failed."""
        out: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if channel is not None:
            out["channel"] = channel
        if command_id is not None:
            out["id"] = command_id
        self.reply(out)

    def writable(self, limit: int) -> bool:
        """Open, and its transport holds at most ``limit`` bytes not yet sent."""
        return (not self.closing and self.ws.protocol.state is State.OPEN
                and not self.ws.transport.is_closing()
                and self.ws.transport.get_write_buffer_size() <= limit)


class WebsocketServer:
    """Serves the channels of ``hub`` to websocket clients."""

    def __init__(self, settings: BroadcastSettings, hub: Hub, credentials: Credentials,
                 publisher: Publisher, metrics: BroadcastMetrics,
                 stale: Callable[[], dict[str, int]] = dict) -> None:
        self.settings = settings
        self.stale = stale  # races whose board has not moved -> age (s): in heartbeats
        self.hub = hub
        self.credentials = credentials
        self.publisher = publisher
        self.metrics = metrics
        self.connections: set[Connection] = set()
        self.port = 0
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._due = asyncio.Event()  # records arrived or a client subscribed: tick soon

    async def start(self) -> int:
        """Listen and start the tick and heartbeat loops; return the bound port."""
        # An Origin allow-list keeps other sites' pages from opening the websocket in a
        # visitor's browser; clients without Origin are not browsers and may send any.
        origins = [*self.settings.origins, None] if self.settings.origins else None
        self._server = await serve(self._handle, self.settings.host, self.settings.ws_port,
                                   compression=None, max_size=MAX_MESSAGE, ping_interval=None,
                                   close_timeout=2, origins=origins,
                                   process_response=_no_version_5xx)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        self._tasks = [asyncio.create_task(self._tick_loop(), name="broadcast-tick"),
                       asyncio.create_task(self._heartbeat_loop(), name="broadcast-heartbeat")]
        return self.port

    def records_arrived(self) -> None:
        """Tick as soon as the tick period allows (the follower calls it)."""
        self._due.set()

    async def stop(self) -> None:
        """Close every connection (1001, with the reason to resume elsewhere), stop listening."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(self._close(conn.ws, GOING_AWAY, SHUTDOWN_REASON)
                               for conn in list(self.connections)))
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        if self.settings.ws_send_buffer:
            sock = ws.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.settings.ws_send_buffer)
        conn = Connection(ws)
        self.connections.add(conn)
        self.metrics.connections.inc()
        reason = "client"
        try:
            async for request in ws:
                await self._request(conn, request)
                self._flush([conn], Wire())
        except ConnectionClosed as exc:
            reason = "error" if exc.rcvd is None and not conn.closing else reason
        finally:
            if conn.closing:
                reason = "slow"
            elif self._stopping:
                reason = "shutdown"
            self.hub.drop(conn)
            self.connections.discard(conn)
            self.metrics.connections.dec()
            self.metrics.subscriptions.set(self.hub.subscriptions)
            self.metrics.disconnects.labels(reason).inc()

    def _flush(self, conns: Iterable[Connection], wire: Wire) -> None:
        """Write each writable client's waiting frames (replies, heartbeats) as one message."""
        limit, written = self.settings.ws_write_limit, 0
        for conn in conns:
            if conn.outbox and conn.writable(limit):
                self._write(conn, conn.outbox.take_all(), wire)
                written += 1
        self.metrics.frames_sent.inc(written)

    def _deliver(self, now: float) -> None:
        """After a tick: write to each client what the hub gives it; close the slow ones."""
        limit, slow_s, wire, written = self.settings.ws_write_limit, \
            self.settings.slow_client_s, Wire(), 0
        for conn in list(self.connections):
            frames = self.hub.take(conn, now, conn.writable(limit))
            if frames:
                self._write(conn, frames, wire)
                written += 1
            if not conn.closing and ((lag := conn.outbox.oldest_wait(now)) > slow_s
                                     or conn.outbox.overflowed):
                self._close_slow(conn, lag)
        self.metrics.frames_sent.inc(written)

    def _write(self, conn: Connection, frames: list[bytes], wire: Wire) -> None:
        if self.settings.ws_writer == "broadcast":  # websockets' own, framed per client
            broadcast([conn.ws], message(frames), text=True)
        else:
            conn.ws.transport.write(wire.bytes_of(frames))

    async def _request(self, conn: Connection, request: str | bytes) -> None:
        if isinstance(request, bytes):
            conn.error("bad_json", "requests are JSON objects in text frames, this was a binary "
                       "frame: send e.g. {\"op\": \"ping\"} as text")
            return
        try:
            req = orjson.loads(request)
        except orjson.JSONDecodeError:
            req = None
        if not isinstance(req, dict):
            conn.error("bad_json", "send a JSON object, e.g. {\"op\": \"ping\"}")
            return
        op = req.get("op")
        if op == "ping":
            conn.reply({"type": "pong", "t_ms": int(time.time() * 1000)})
        elif op == "subscribe":
            self._subscribe(conn, req)
            self._due.set()
        elif op == "unsubscribe":
            channel = req.get("channel")
            if isinstance(channel, str) and self.hub.unsubscribe(conn, channel):
                conn.reply({"type": "unsubscribed", "channel": channel})
            else:
                conn.error("not_subscribed", f"no subscription to {channel!r}", _text(channel))
        elif op == "command":
            await self._command(conn, req)
        else:
            conn.error("unknown_op", f"op {op!r} is not subscribe, unsubscribe, command or ping")
        self.metrics.subscriptions.set(self.hub.subscriptions)  # not a sum: O(1) a request

    def _subscribe(self, conn: Connection, req: dict[str, Any]) -> None:
        channel, since, top = req.get("channel"), req.get("since"), req.get("top")
        if not isinstance(channel, str):
            conn.error("bad_request", "subscribe needs 'channel', e.g. \"standings:zegama-2026\"")
            return
        if since is not None and (isinstance(since, bool) or not isinstance(since, int)):
            conn.error("bad_request", "'since' must be an integer seq", channel)
            return
        try:
            kind, race, _ = parse_name(channel)
            if kind == "control":
                name = self.credentials.control_name(req.get("token"))  # type: ignore[arg-type]
                if name is None:
                    conn.error("unauthorized", "control channels need a valid race-control "
                               "token in 'token' (ask the race director for one)", channel)
                    return
                conn.control[race] = name
            self.hub.subscribe(conn, channel, top, since)
        except ChannelError as exc:
            conn.error(exc.code, str(exc), channel)

    async def _command(self, conn: Connection, req: dict[str, Any]) -> None:
        race = req.get("race")
        race = race if isinstance(race, str) else ""
        cid = _command_id(req.get("command"))
        name = conn.control.get(race)
        if name is None or f"control:{race}" not in conn.subs:
            conn.error("not_subscribed", "send commands on a connection subscribed to "
                       f"control:{race} with a valid token", command_id=cid)
            self.metrics.commands.labels("refused").inc()
            return
        try:
            record = build_command(self.hub.views[race], req.get("command"), f"control:{name}",
                                   int(time.time() * 1000))
        except CommandError as exc:
            conn.error("invalid_command", str(exc), command_id=cid)
            self.metrics.commands.labels("invalid").inc()
            return
        try:
            await self.publisher.publish(record)
        except Exception as exc:  # a Kafka error or timeout: the page can send it again
            log.warning("command %s of %s not published: %s", record["id"], name, exc)
            conn.error("publish_failed", f"Kafka did not take the command ({exc}); nothing was "
                       "published, send it again", command_id=record["id"])
            self.metrics.commands.labels("publish_failed").inc()
            return
        log.info("command %s %s by %s published", record["id"], record["op"], record["by"])
        self.metrics.commands.labels("published").inc()
        conn.reply({"type": "ack", "id": record["id"], "command": record})

    async def _tick_loop(self) -> None:
        """Tick when records arrived or a client subscribed, at most once a period."""
        period, last = self.settings.tick_ms / 1000.0, 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(),
                                       period if self.hub.holding() else IDLE_TICK_S)
            self._due.clear()
            if (wait := last + period - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            now = last = time.monotonic()
            try:
                stats = self.hub.tick(now, int(time.time() * 1000))
            except Exception:  # a record of an unexpected shape must not stop the fan-out
                log.exception("a fan-out tick failed; the next one carries on")
                continue
            self._deliver(now)
            self.metrics.frames_encoded.inc(stats.frames_encoded)
            self.metrics.channels.set(len(self.hub.channels))
            self.metrics.dropped.inc(stats.dropped)

    def _close_slow(self, conn: Connection, lag: float) -> None:
        conn.closing = True
        self.hub.drop(conn)
        if conn.outbox.overflowed:  # answers to requests it sent faster than it read
            reason = f"too slow: more than {conn.outbox.max_frames} messages waited unread; " \
                     "read the answers before sending more requests"
        else:
            reason = f"too slow: a frame waited more than {self.settings.slow_client_s:g} s " \
                     f"to be written ({lag:.1f} s)"
        log.info("closing a slow client: %s", reason)
        task = asyncio.create_task(self._close(conn.ws, SLOW, reason))
        self._closing.add(task)  # a reference, so the task is not collected mid-way
        task.add_done_callback(self._closing.discard)

    async def _close(self, ws: ServerConnection, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(ws.close(code, reason), self.settings.slow_client_s)
        except (TimeoutError, ConnectionClosed):
            ws.transport.abort()  # it does not read: not even the close frame gets through

    async def _heartbeat_loop(self) -> None:
        """A heartbeat every ``heartbeat_s``, and at once when a race's board becomes
        stale or moves again: pages show "delayed" within a second of it."""
        last_sent = time.monotonic()
        said: set[str] = set()
        while True:
            await asyncio.sleep(min(1.0, self.settings.heartbeat_s))
            now = time.monotonic()
            stale = self.stale()
            if now - last_sent < self.settings.heartbeat_s and set(stale) == said:
                continue
            last_sent, said = now, set(stale)
            beat: dict[str, Any] = {"type": "heartbeat", "t_ms": int(time.time() * 1000)}
            if stale:
                beat["stale"] = stale
            frame = orjson.dumps(beat)
            for conn in self.connections:
                conn.outbox.push(None, frame, now)
            self._flush(self.connections, Wire())


def _no_version_5xx(connection: ServerConnection, request: Any, response: Any) -> Any:
    """A handshake in another HTTP version than 1.1 is the client's mistake: a 400 that
    says so, not the library's 505 (a 5xx reads as this server failing)."""
    if response.status_code == HTTPStatus.HTTP_VERSION_NOT_SUPPORTED:
        return connection.respond(HTTPStatus.BAD_REQUEST, "a websocket handshake is an "
                                  "HTTP/1.1 GET with Upgrade: websocket (RFC 6455)\n")
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _command_id(command: Any) -> str | None:
    """The client's id of a command, when it gave a usable one (commands.py checks it)."""
    given = command.get("id") if isinstance(command, dict) else None
    return given if isinstance(given, str) and 1 <= len(given) <= 100 else None
