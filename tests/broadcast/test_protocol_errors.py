"""Hostile or broken client input against a real broadcaster (records in a real Kafka
broker, real websocket clients): each bad frame gets an error frame or a close with a
code and a reason, the connection left open still answers a ping, and a well-behaved
client connected all along still gets its standings frames (docs/websocket.md)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import pytest_asyncio
import websockets
from broadcast_client import unbatched
from broadcast_kafka import produce, producer, running, send, settings_for, unique_race
from broadcast_records import RaceRecords
from websockets.exceptions import ConnectionClosed

from broadcast.connections import MAX_MESSAGE
from zegama_live.records.websocket import decode_frame
from zegama_live.topics import STANDINGS

# One broadcaster for the whole module: its observer stays connected through every test.
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
Json = dict[str, Any]


class Client:
    """A websocket client reading one message at a time: batches opened, heartbeats
    skipped, each message checked against the protocol's records."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.held: deque[Json] = deque()

    async def next(self, timeout: float = 5.0) -> Json:
        while not self.held:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
            for message in unbatched(orjson.loads(raw)):
                decode_frame(orjson.dumps(message))
                if message.get("type") != "heartbeat":
                    self.held.append(message)
        return self.held.popleft()

    async def answer(self) -> Json | ConnectionClosed:
        """The next message, or how the server closed the connection."""
        try:
            return await self.next()
        except ConnectionClosed as closed:
            return closed

    async def pongs(self) -> None:
        await send(self.ws, {"op": "ping"})
        assert (await self.next())["type"] == "pong"


def assert_error(answer: Json | ConnectionClosed, code: str, channel: Any = None) -> None:
    assert not isinstance(answer, ConnectionClosed), f"closed instead of {code!r}: {answer}"
    assert answer["type"] == "error" and answer["code"] == code, answer
    assert isinstance(answer["message"], str) and len(answer["message"]) > 10, answer
    assert answer.get("channel") == (channel if isinstance(channel, str) else None), answer


def assert_closed(answer: Json | ConnectionClosed, code: int) -> None:
    assert isinstance(answer, ConnectionClosed), f"not closed: {answer}"
    assert answer.rcvd is not None, "the connection dropped without a close frame"
    assert answer.rcvd.code == code and answer.rcvd.reason, answer.rcvd


@dataclass
class Served:
    url: str
    race: str
    observer: Client  # subscribed to standings:<race> before the first test
    seq: int  # the last standings seq the observer got
    more: Any  # async callable: produce the next tick's records, return its standings seq

    async def survived(self, client: Client | None) -> None:
        """``client`` (when the server left it open) and the observer are still served."""
        if client is not None:
            await client.pongs()
        want = await self.more()
        while self.seq < want:
            frame = await self.observer.next()
            assert frame["channel"] == f"standings:{self.race}", frame
            self.seq = frame["seq"]
        await self.observer.pongs()


def standings_seq(records: list[tuple[str, str, Json]]) -> int:
    return max(r["seq"] for t, _, r in records if t == STANDINGS)


@pytest.fixture(scope="module")
def bootstrap(kafka_broker) -> str:  # type: ignore[no-untyped-def]
    """kafka_bootstrap, for the module (a test of another module may have stopped it)."""
    if not kafka_broker.answers():
        kafka_broker.start()
    return kafka_broker.bootstrap  # type: ignore[no-any-return]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(bootstrap, tmp_path_factory) -> AsyncIterator[Served]:  # type: ignore[no-untyped-def]
    rr = RaceRecords(unique_race(tmp_path_factory.mktemp("protocol")))
    ticks = rr.run()
    async with contextlib.AsyncExitStack() as stack:
        p = await stack.enter_async_context(producer(bootstrap))

        async def more() -> int:
            records = next(ticks)
            await produce(p, records)
            return standings_seq(records)

        first = await more()
        b = await stack.enter_async_context(running(settings_for(bootstrap, rr.race_dir)))
        url = f"ws://127.0.0.1:{b.ws_port}/"
        observer = Client(await stack.enter_async_context(websockets.connect(url)))
        await send(observer.ws, {"op": "subscribe", "channel": f"standings:{rr.race.id}"})
        snapshot = await observer.next()
        assert (snapshot["type"], snapshot["seq"]) == ("snapshot", first)
        yield Served(url, rr.race.id, observer, first, more)


@pytest_asyncio.fixture(loop_scope="module")
async def client(served: Served) -> AsyncIterator[Client]:
    async with websockets.connect(served.url) as ws:
        yield Client(ws)


@pytest.mark.parametrize("text", [
    "not json", "", "   ", "{", '{"op": "ping"', '{"op": "ping"}}', "{'op': 'ping'}",
    '{"op": NaN}', "[" * 2000 + "]" * 2000,  # deeper than orjson's limit
    "[]", '[{"op": "ping"}]', "42", "-1.5e300", '"ping"', "null", "true",
])
async def test_text_that_is_not_a_json_object_gets_bad_json(served, client, text) -> None:  # type: ignore[no-untyped-def]
    await client.ws.send(text)
    assert_error(await client.answer(), "bad_json")
    await served.survived(client)


@pytest.mark.parametrize("fields", [
    {}, {"channel": None}, {"channel": 7}, {"channel": True}, {"channel": ["standings:R"]},
    {"channel": {"kind": "standings"}},
    {"since": "1"}, {"since": 1.5}, {"since": True}, {"since": [1]}, {"since": {"seq": 1}},
    {"top": "10"}, {"top": 2.5}, {"top": False}, {"top": 0}, {"top": 501},
    {"top": [10]}, {"top": {"n": 10}},
], ids=repr)
async def test_a_subscribe_with_a_wrong_typed_field_gets_bad_request(  # type: ignore[no-untyped-def]
        served, client, fields) -> None:
    message = {"op": "subscribe", "channel": f"standings:{served.race}", **fields}
    if not fields:
        del message["channel"]
    await send(client.ws, message)
    assert_error(await client.answer(), "bad_request", message.get("channel"))
    await served.survived(client)


async def test_a_since_beyond_64_bits_gets_bad_request(served, client) -> None:  # type: ignore[no-untyped-def]
    channel = f"standings:{served.race}"
    await client.ws.send(f'{{"op": "subscribe", "channel": "{channel}", "since": {2**64}}}')
    assert_error(await client.answer(), "bad_request", channel)
    await served.survived(client)


@pytest.mark.parametrize("message", [
    {"op": "dance"}, {"op": "PING"}, {"op": ""}, {}, {"channel": "standings:R"},
    {"op": None}, {"op": 7}, {"op": ["ping"]}, {"op": {"op": "ping"}},
], ids=repr)
async def test_an_unknown_op_gets_unknown_op(served, client, message) -> None:  # type: ignore[no-untyped-def]
    await send(client.ws, message)
    assert_error(await client.answer(), "unknown_op")
    await served.survived(client)


@pytest.mark.parametrize("data", [b"\x00\x01\x02\xff garbage", b"\xff\xfe{}", b"\x89PNG\r\n",
                                  b"", b"not json"], ids=repr)
async def test_a_binary_frame_of_garbage_gets_bad_json(served, client, data) -> None:  # type: ignore[no-untyped-def]
    await client.ws.send(data)
    assert_error(await client.answer(), "bad_json")
    await served.survived(client)


async def test_a_binary_frame_of_valid_json_is_refused(served, client) -> None:  # type: ignore[no-untyped-def]
    """The protocol is JSON objects in text frames: a binary one is refused, with an
    error frame or a close 1003 (RFC 6455: data of a type it cannot accept)."""
    await client.ws.send(orjson.dumps({"op": "ping"}))
    answer = await client.answer()
    if isinstance(answer, ConnectionClosed):
        assert_closed(answer, 1003)
        await served.survived(None)
    else:
        assert answer["type"] == "error", f"a binary frame was served: {answer}"
        assert_error(answer, answer["code"])
        await served.survived(client)


async def test_a_frame_of_exactly_max_message_is_served(served, client) -> None:  # type: ignore[no-untyped-def]
    frame = orjson.dumps({"op": "ping", "pad": ""}).decode()
    await client.ws.send(frame.replace('""', '"' + "x" * (MAX_MESSAGE - len(frame)) + '"'))
    assert (await client.next())["type"] == "pong"
    await served.survived(client)


@pytest.mark.parametrize("how", ["text", "binary", "fragments"])
async def test_a_frame_over_max_message_is_closed_1009(served, client, how) -> None:  # type: ignore[no-untyped-def]
    text = orjson.dumps({"op": "ping", "pad": "x" * MAX_MESSAGE}).decode()
    chunks = [text[i:i + 4096] for i in range(0, len(text), 4096)]
    with contextlib.suppress(ConnectionClosed):  # the server may close before the last byte
        await client.ws.send({"text": text, "binary": text.encode(), "fragments": chunks}[how])
    assert_closed(await client.answer(), 1009)
    await served.survived(None)


async def test_a_client_sending_far_more_than_it_reads_is_told_so_when_closed(served) -> None:  # type: ignore[no-untyped-def]
    """Requests answered faster than the client reads them fill its outbox: it is
    closed with 4008 and a reason that says so (not that a frame waited 10 s)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(served.url.rsplit(":", 1)[1].strip("/"))))
    async with websockets.connect(served.url, sock=sock, max_queue=1) as ws:
        ping = orjson.dumps({"op": "ping"}).decode()
        with contextlib.suppress(ConnectionClosed):
            for _ in range(30_000):  # ~1.3 MB of pongs: past the kernel, transport and outbox
                await ws.send(ping)
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(20):
                while True:
                    await ws.recv()
    assert_closed(closed.value, 4008)
    assert "unread" in closed.value.rcvd.reason, closed.value.rcvd  # type: ignore[union-attr]
    await served.survived(None)
