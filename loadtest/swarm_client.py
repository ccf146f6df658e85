"""A spectator of the swarm: one websocket connection, and the ``Tally`` it counts into.

Each spectator is an ``asyncio.Protocol`` speaking the websocket protocol itself
(``swarm_wire``): no task and no stream buffers per connection, a frame costs one parse
and one timestamp lookup (a regular expression over the frame's first bytes). Only the
clients chosen to ``parse`` decode whole frames, for the end-to-end latency of rows.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from broadcast.wire import BATCH_HEAD as BATCH
from loadtest import swarm_wire as wire
from loadtest.swarm_histogram import Histogram

if TYPE_CHECKING:
    from loadtest.swarm_worker import Worker

GENERATED = re.compile(rb'"generated_ms":\s*(\d+)')
MESSAGE = b'{"type":"'  # how each message of a batch starts, after a '[' or a ',' (the
# server's orjson writes no spaces, and no channel's data holds a "type" key first)
OPENERS = frozenset(b"[,")


def _starts(batch: bytes) -> list[int]:
    """The offsets of the messages in a batch's bytes.

    A literal search (``bytes.find``), not a regular expression: one starting with a
    character class tries a match at every comma of the JSON, and that cost half the
    swarm's CPU, enough to make the swarm, not the broadcaster, the slow reader.
    """
    out, at = [], len(BATCH)
    while (at := batch.find(MESSAGE, at)) >= 0:
        if batch[at - 1] in OPENERS:
            out.append(at)
        at += len(MESSAGE)
    return out


@dataclass(slots=True)
class Tally:
    """What happened in one second (or a whole run, once merged)."""

    connects: int = 0
    connect_failures: dict[str, int] = field(default_factory=dict)
    frames: int = 0
    bytes: int = 0
    snapshots: int = 0
    updates: int = 0
    error_frames: int = 0
    disconnects: dict[int, int] = field(default_factory=dict)
    open: int = 0
    tick: Histogram = field(default_factory=Histogram)
    e2e: Histogram = field(default_factory=Histogram)
    connect: Histogram = field(default_factory=Histogram)

    def merge(self, other: Tally) -> None:
        """Add ``other``'s counts; ``open`` adds up too (workers' open connections)."""
        self.connects += other.connects
        for k, v in other.connect_failures.items():
            self.connect_failures[k] = self.connect_failures.get(k, 0) + v
        self.frames += other.frames
        self.bytes += other.bytes
        self.snapshots += other.snapshots
        self.updates += other.updates
        self.error_frames += other.error_frames
        for c, v in other.disconnects.items():
            self.disconnects[c] = self.disconnects.get(c, 0) + v
        self.open += other.open
        self.tick.merge(other.tick)
        self.e2e.merge(other.e2e)
        self.connect.merge(other.connect)


class Spectator(asyncio.Protocol):
    """One client connection; counts into the worker's current ``Tally``."""

    def __init__(self, worker: Worker, parse: bool, key: bytes, request: bytes) -> None:
        self.worker = worker
        self.parse = parse
        self.key = key
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A handshake that fails after its connect timed out has nobody awaiting it.
        self.upgraded.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.parser = wire.FrameParser()
        self.close_code = 1006  # no close frame received: abnormal closure
        self.ours = False  # we closed at the end of the run
        self.last_fix: dict[str, Any] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.upgraded.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > wire.MAX_HEADER:
                    self._fail("handshake: response header too long")
                return
            try:
                wire.check_handshake_response(self.head[:end], self.key)
            except wire.WireError as exc:
                self._fail(str(exc))
                return
            data, self.head = self.head[end + 4:], b""
            self.upgraded.set_result(None)
            if not data:
                return
        now_ms = time.time() * 1000.0
        tally = self.worker.tally
        tally.bytes += len(data)
        try:
            messages = self.parser.feed(data)
        except wire.WireError as exc:
            tally.connect_failures[f"protocol: {exc}"] = (
                tally.connect_failures.get(f"protocol: {exc}", 0) + 1)
            self.close_code = 1002
            self.close(1002)
            return
        for op, payload in messages:
            if op == wire.OP_TEXT or op == wire.OP_BINARY:
                self._on_message(payload, now_ms, tally)
            elif op == wire.OP_PING:
                self._send(wire.client_frame(wire.OP_PONG, payload))
            elif op == wire.OP_CLOSE:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.close(self.close_code)

    def _on_message(self, payload: bytes, now_ms: float, tally: Tally) -> None:
        tally.frames += 1
        if not payload.startswith(BATCH):
            self._on_one(payload, 0, now_ms, tally)
            if self.parse:
                self._rows_latency(orjson.loads(payload), now_ms, tally)
            return
        # Several messages waited for this tick: each found where it starts, unparsed.
        for start in _starts(payload):
            self._on_one(payload, start, now_ms, tally)
        if self.parse:
            for message in orjson.loads(payload)["messages"]:
                self._rows_latency(message, now_ms, tally)

    def _on_one(self, payload: bytes, start: int, now_ms: float, tally: Tally) -> None:
        kind = payload[start:start + 24]
        if b'"update"' in kind:
            tally.updates += 1
            # Only updates: a snapshot carries the state as of its last change (on a
            # subscription, or after a slow stretch), not the moment of a tick.
            m = GENERATED.search(payload, start, start + 4096) or GENERATED.search(payload,
                                                                                start)
            if m is not None:
                tally.tick.add(now_ms - int(m.group(1)))
        elif b'"snapshot"' in kind:
            tally.snapshots += 1
        elif b'"error"' in kind:
            tally.error_frames += 1

    def _rows_latency(self, message: dict[str, Any], now_ms: float, tally: Tally) -> None:
        """End-to-end latency of every row whose ``last_fix_ms`` changed since last seen."""
        if message.get("type") not in ("update", "snapshot"):
            return
        data = message.get("data") or {}
        rows = data.get("rows") if "rows" in data else data.get("runners")
        last = self.last_fix
        for row in rows or ():
            bib, fix_ms = row.get("bib"), row.get("last_fix_ms")
            if fix_ms is None:
                continue
            before = last.get(bib)
            if before is not None and before != fix_ms:
                tally.e2e.add(now_ms - fix_ms)
            last[bib] = fix_ms

    def connection_lost(self, exc: Exception | None) -> None:
        self.worker.open.discard(self)
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError(f"closed during handshake: {exc}"))
        elif not self.ours:
            d = self.worker.tally.disconnects
            d[self.close_code] = d.get(self.close_code, 0) + 1

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _fail(self, reason: str) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.close()

    def close(self, code: int) -> None:
        """Send a close frame with ``code`` (an echo of the server's) and hang up."""
        self._send(wire.client_frame(wire.OP_CLOSE, wire.close_payload(code)))
        if self.transport is not None:
            self.transport.close()

    def finish(self) -> None:
        """The run is over: close normally; this is not counted as a disconnect."""
        self.ours = True
        self.close(1000)
