"""The few pieces of the websocket wire format (RFC 6455) the spectator swarm needs.

The swarm speaks the protocol itself over plain asyncio transports instead of using one
``websockets`` connection object per client: at 20,000 clients on two cores, the
per-connection tasks and buffers of a full client library cost more CPU than the
broadcaster under test. Only what a spectator uses is here: the opening handshake, an
incremental parser of server frames (unmasked, possibly split over many reads), and
masked client frames. The benchmark's raw server builds its frames with ``frame``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_HEADER = 16 * 1024


class WireError(ValueError):
    """The peer broke the websocket protocol; the message says how."""


def accept_key(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` value that answers a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def handshake_request(host: str, port: int, path: str) -> tuple[bytes, bytes]:
    """(the HTTP upgrade request, its key). No extension is offered: no compression."""
    key = base64.b64encode(os.urandom(16))
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    return request, key


def check_handshake_response(head: bytes, key: bytes) -> None:
    """Raise WireError unless ``head`` (up to the blank line) accepts the upgrade."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or parts[1] != b"101":
        raise WireError(f"handshake refused: {lines[0].decode(errors='replace')}")
    expected = accept_key(key)
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-accept":
            if value.strip() != expected:
                raise WireError("handshake: wrong Sec-WebSocket-Accept")
            return
    raise WireError("handshake: no Sec-WebSocket-Accept header")


def header(opcode: int, length: int, *, fin: bool = True, masked: bool = False) -> bytes:
    """The frame header (without mask key) for a payload of ``length`` bytes."""
    b0 = (0x80 if fin else 0) | opcode
    m = 0x80 if masked else 0
    if length < 126:
        return struct.pack("!BB", b0, m | length)
    if length < 1 << 16:
        return struct.pack("!BBH", b0, m | 126, length)
    return struct.pack("!BBQ", b0, m | 127, length)


def frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked (server to client) frame: header + payload, built once, sent many times."""
    return header(opcode, len(payload)) + payload


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked (client to server) frame, as RFC 6455 requires of clients."""
    mask = os.urandom(4)
    n = len(payload)
    # XOR with the repeated mask through one big-int operation, not a byte loop.
    key = (mask * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return header(opcode, n, masked=True) + mask + body


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()[:120]


@dataclass(slots=True)
class FrameParser:
    """Incremental parser of server frames: ``feed`` bytes, get whole (opcode, payload)s.

    Fragmented messages are joined (the opcode of the first fragment is reported).
    Raises WireError on a reserved opcode or a message over ``max_size`` bytes.
    """

    max_size: int = 64 * 1024 * 1024
    buf: bytearray | None = None
    need: int = 2
    frag_op: int = -1
    frag: bytearray | None = None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self.buf
        if buf is None:
            buf = self.buf = bytearray()
        buf += data
        out: list[tuple[int, bytes]] = []
        while len(buf) >= self.need:
            item = self._one(buf)
            if item is None:
                break
            if item[0] >= 0:  # -1: a fragment of a message not complete yet
                out.append(item)
        return out

    def _one(self, buf: bytearray) -> tuple[int, bytes] | None:
        b0, b1 = buf[0], buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                self.need = 4
                return None
            n = struct.unpack_from("!H", buf, 2)[0]
            pos = 4
        elif n == 127:
            if len(buf) < 10:
                self.need = 10
                return None
            n = struct.unpack_from("!Q", buf, 2)[0]
            pos = 10
        if n > self.max_size:
            raise WireError(f"frame of {n} bytes is over the limit of {self.max_size}")
        mask = b""
        if b1 & 0x80:
            mask, pos = bytes(buf[pos:pos + 4]), pos + 4
        end = pos + n
        if len(buf) < end:
            self.need = end
            return None
        payload = bytes(buf[pos:end])
        del buf[:end]
        self.need = 2
        if mask:
            key = (mask * (n // 4 + 1))[:n]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(
                n, "big")
        return self._message(b0 & 0x80 != 0, b0 & 0x0F, payload)

    def _message(self, fin: bool, op: int, payload: bytes) -> tuple[int, bytes]:
        if op >= OP_CLOSE:
            return op, payload  # control frames are never fragmented
        if op not in (OP_CONT, OP_TEXT, OP_BINARY):
            raise WireError(f"reserved opcode {op:#x}")
        if op != OP_CONT:
            if fin:
                return op, payload
            self.frag_op, self.frag = op, bytearray(payload)
            return -1, b""
        if self.frag is None:
            raise WireError("continuation frame without a first fragment")
        self.frag += payload
        if len(self.frag) > self.max_size:
            raise WireError(f"message over the limit of {self.max_size} bytes")
        if not fin:
            return -1, b""
        whole, self.frag = bytes(self.frag), None
        return self.frag_op, whole
