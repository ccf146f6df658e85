"""A client's waiting frames as one websocket message, framed once per distinct list."""

from __future__ import annotations

import orjson
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from broadcast.wire import Wire, message


def parse(data: bytes) -> Frame:
    """The one server frame in ``data``, read as a client reads it."""
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("not a whole frame")


def test_one_frame_goes_as_it_is_several_as_one_batch_in_order() -> None:
    a, b = orjson.dumps({"type": "update", "seq": 1}), orjson.dumps({"type": "pong", "t_ms": 5})
    assert message([a]) is a
    assert orjson.loads(message([a, b])) == {"type": "batch", "messages": [
        {"type": "update", "seq": 1}, {"type": "pong", "t_ms": 5}]}


def test_the_same_frames_are_framed_once_and_read_back_as_a_text_message() -> None:
    a, b = b'{"type":"update","seq":1}', b'{"type":"update","seq":2}'
    wire = Wire()
    first = wire.bytes_of([a, b])
    assert wire.bytes_of([a, b]) is first and wire.encoded == 1
    assert wire.bytes_of([a]) is not first and wire.encoded == 2
    frame = parse(first)
    assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == message([a, b])
    big = b'{"pad":"' + b"x" * 70_000 + b'"}'  # a 64-bit length header
    assert parse(Wire().bytes_of([big])).data == big
