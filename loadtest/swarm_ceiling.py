"""The fan-out ceiling: a bare asyncio server writing pre-framed websocket bytes.

The least a websocket broadcaster must do per tick: encode the channel's frame once
(orjson, then the frame header) and ``transport.write`` the same bytes to every
connection. No per-client queue, no slow-client policy, no Kafka: what the broadcaster
achieves is compared against this. It speaks just enough of RFC 6455 to accept the
swarm: the opening handshake, a snapshot frame on connect, client frames ignored.
Run it in its own process (``ceiling_main``) so its CPU time and memory can be measured.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from loadtest import swarm_wire as wire
from loadtest.swarm_feed import Stamper, StandingsFeed
from loadtest.swarm_worker import raise_open_files_limit


def envelope(channel: str, record: dict[str, Any]) -> bytes:
    """The broadcaster's frame for a standings record (docs/websocket.md), as a ws frame."""
    if record["type"] == "snapshot":
        msg = {"type": "snapshot", "channel": channel, "seq": record["seq"],
               "data": record["board"]}
    else:
        data = {k: v for k, v in record.items() if k not in ("v", "type")}
        msg = {"type": "update", "channel": channel, "seq": record["seq"], "data": data}
    return wire.frame(wire.OP_TEXT, orjson.dumps(msg))


class Connection(asyncio.Protocol):
    """One client: handshake, then it only receives."""

    def __init__(self, server: CeilingServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.open or self.transport is None:
            return  # the subscribe message and close frames need no answer here
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > wire.MAX_HEADER:
                self.transport.close()
            return
        key = b""
        for line in self.head[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        if not key:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            self.transport.close()
            return
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + wire.accept_key(key) + b"\r\n\r\n")
        self.transport.write(self.server.snapshot_frame)
        self.open = True
        self.server.clients.add(self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.server.clients.discard(self.transport)


class CeilingServer:
    """Serves ``feed`` on ``channel`` at ``hz`` ticks per second."""

    def __init__(self, feed: StandingsFeed, channel: str, hz: float) -> None:
        self.feed = feed
        self.channel = channel
        self.hz = hz
        self.clients: set[asyncio.Transport] = set()
        self.stamper = Stamper(feed)
        self.snapshot_frame = envelope(channel, self.stamper.snapshot(int(time.time() * 1000)))
        self.frames_written = 0

    def tick(self) -> None:
        """Encode the next update once and write it to every client."""
        data = envelope(self.channel, self.stamper.update(int(time.time() * 1000)))
        for transport in self.clients:
            transport.write(data)
        self.frames_written += len(self.clients)

    async def run(self, port: int, duration_s: float, ready: Any = None) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Connection(self), "127.0.0.1", port,
                                          backlog=4096)
        if ready is not None:
            ready.set()
        start = time.monotonic()
        i = 0
        async with server:
            while time.monotonic() - start < duration_s:
                i += 1
                # Ticks on an absolute schedule: a slow tick does not shift the next ones.
                await asyncio.sleep(max(0.0, start + i / self.hz - time.monotonic()))
                self.tick()


def ceiling_main(feed: StandingsFeed, channel: str, hz: float, port: int, duration_s: float,
                 ready: Any = None) -> None:
    """Process entry point: serve until ``duration_s`` has passed."""
    raise_open_files_limit()
    asyncio.run(CeilingServer(feed, channel, hz).run(port, duration_s, ready))
