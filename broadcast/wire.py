"""A client's waiting frames as the bytes of one websocket message (sans-I/O).

Every subscriber of a channel is queued the same frame objects, so clients with the
same subscriptions, caught up alike, wait for the same list of frames: ``Wire`` frames
each distinct list once per tick (websockets' own ``Frame``, unmasked as a server's
frames are, no extensions since compression is off) and the writer hands the same
bytes to every such client's transport. One frame stands as it is; several go as one
``batch`` message (docs/websocket.md), joined as bytes without decoding them.
"""

from __future__ import annotations

from websockets.frames import Frame, Opcode

BATCH_HEAD = b'{"type":"batch","messages":['
BATCH_TAIL = b"]}"


def message(frames: list[bytes]) -> bytes:
    """The JSON text of one websocket message holding ``frames`` in order."""
    if len(frames) == 1:
        return frames[0]
    return BATCH_HEAD + b",".join(frames) + BATCH_TAIL


class Wire:
    """The framed bytes of each distinct list of frames written in one tick."""

    def __init__(self) -> None:
        # id()s of the frames -> (the frames, held so no id is reused meanwhile; bytes)
        self._made: dict[int | tuple[int, ...], tuple[list[bytes], bytes]] = {}
        self.encoded = 0

    def bytes_of(self, frames: list[bytes]) -> bytes:
        """The websocket frame of the message holding ``frames``, framed once per tick."""
        key = id(frames[0]) if len(frames) == 1 else tuple(map(id, frames))
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = (frames, Frame(Opcode.TEXT, message(frames))
                                      .serialize(mask=False))
            self.encoded += 1
        return made[1]
