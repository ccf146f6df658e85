"""The websocket protocol end to end: records in a real Kafka broker, a real broadcaster,
real websocket clients (docs/websocket.md)."""

from __future__ import annotations

import asyncio
import socket
import time

import orjson
import pytest
import websockets
from aiokafka import AIOKafkaConsumer, TopicPartition
from broadcast_client import ClientChannel, without_clock
from broadcast_kafka import (
    TOKEN,
    produce,
    producer,
    receive,
    running,
    send,
    settings_for,
    unique_race,
)
from broadcast_records import RaceRecords

from broadcast.compact import compact
from zegama_live.records.websocket import decode_frame
from zegama_live.topics import CONTROL, STANDINGS

pytestmark = pytest.mark.integration


def standings_seq(records: list) -> int:  # type: ignore[type-arg]
    return max(r["seq"] for t, _, r in records if t == STANDINGS)


async def test_snapshot_on_subscribe_then_updates_in_order(kafka_bootstrap, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rr = RaceRecords(unique_race(tmp_path))
    ticks = rr.run()
    before = [rec for _ in range(20) for rec in next(ticks)]
    async with producer(kafka_bootstrap) as p:
        await produce(p, before)
        async with running(settings_for(kafka_bootstrap, rr.race_dir)) as b, \
                websockets.connect(f"ws://127.0.0.1:{b.ws_port}/") as ws:
            name = f"standings:{rr.race.id}"
            await send(ws, {"op": "subscribe", "channel": name})
            first = await receive(ws)
            assert first["type"] == "snapshot" and first["seq"] == standings_seq(before)
            assert first["data"] == compact(rr.board)
            held = ClientChannel(name)
            held.apply(first)
            seqs = []
            for _batch in range(3):
                after = [rec for _ in range(10) for rec in next(ticks)]
                await produce(p, after)
                while held.seq < standings_seq(after):
                    frame = await receive(ws)
                    seqs.append(frame["seq"])
                    held.apply(frame)
                assert without_clock(held.state) == without_clock(compact(rr.board))
            assert seqs == sorted(seqs) and len(seqs) >= 3
            assert without_clock(held.state) == without_clock(compact(rr.board))


async def test_resume_with_since_replays_only_what_was_missed(kafka_bootstrap, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rr = RaceRecords(unique_race(tmp_path), snapshot_every=1000)
    ticks = rr.run()
    async with producer(kafka_bootstrap) as p:
        await produce(p, next(ticks))
        async with running(settings_for(kafka_bootstrap, rr.race_dir)) as b:
            url, name = f"ws://127.0.0.1:{b.ws_port}/", f"flow:{rr.race.id}"
            held = ClientChannel(name)
            async with websockets.connect(url) as ws:
                await send(ws, {"op": "subscribe", "channel": name})
                held.apply(await receive(ws))
                records = [rec for _ in range(10) for rec in next(ticks)]
                await produce(p, records)
                while held.seq < max(r["seq"] for t, _, r in records if t != STANDINGS):
                    held.apply(await receive(ws))
            missed = [rec for _ in range(10) for rec in next(ticks)]
            await produce(p, missed)
            await asyncio.sleep(0.5)  # the broadcaster takes them while the client is away
            async with websockets.connect(url) as ws:
                await send(ws, {"op": "subscribe", "channel": name, "since": held.seq})
                last = max(r["seq"] for t, _, r in missed if t != STANDINGS)
                types = []
                while held.seq < last:
                    frame = await receive(ws)
                    types.append(frame["type"])
                    held.apply(frame)
                assert set(types) == {"update"}  # no snapshot: the missed updates were kept
                assert held.state == compact(b.hub.channel(name).snapshot_data())


async def test_control_needs_a_valid_token(kafka_bootstrap, tmp_path) -> None:  # type: ignore[no-untyped-def]
    race_dir = unique_race(tmp_path)
    async with running(settings_for(kafka_bootstrap, race_dir)) as b, \
            websockets.connect(f"ws://127.0.0.1:{b.ws_port}/") as ws:
        name = f"control:{race_dir.name}"
        for token in (None, "guess", "k-media-0123456789"):
            await send(ws, {"op": "subscribe", "channel": name, "token": token})
            err = await receive(ws)
            assert err["type"] == "error" and err["code"] == "unauthorized"
            assert err["channel"] == name
        await send(ws, {"op": "command", "race": race_dir.name,
                        "command": {"op": "dnf", "bib": "1", "reason": "x"}})
        assert (await receive(ws))["code"] == "not_subscribed"
        await send(ws, {"op": "ping"})
        assert (await receive(ws))["type"] == "pong"  # no snapshot ever came


async def test_a_command_is_published_stamped_and_logged(kafka_bootstrap, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rr = RaceRecords(unique_race(tmp_path))
    ticks = rr.run()
    rid = rr.race.id
    async with producer(kafka_bootstrap) as p:
        await produce(p, [rec for _ in range(20) for rec in next(ticks)])
        async with running(settings_for(kafka_bootstrap, rr.race_dir)) as b, \
                websockets.connect(f"ws://127.0.0.1:{b.ws_port}/") as ws:
            await send(ws, {"op": "subscribe", "channel": f"control:{rid}", "token": TOKEN})
            snap = await receive(ws)
            assert snap["type"] == "snapshot" and set(snap["data"]["runners"]) >= {"1", "2"}
            await send(ws, {"op": "command", "race": rid,
                            "command": {"op": "dnf", "bib": "77", "reason": "x"}})
            bad = await receive(ws)
            assert bad["code"] == "invalid_command" and "77" in bad["message"]
            t0 = int(time.time() * 1000)
            await send(ws, {"op": "command", "race": rid,
                            "command": {"op": "dnf", "bib": "1", "reason": "hypothermia"}})
            ack = await receive(ws)
            assert ack["type"] == "ack" and ack["id"].startswith("c-")
            published = await read_control(kafka_bootstrap, rid)
            assert published == ack["command"]
            assert published["by"] == "control:maite" and published["at_ms"] >= t0
            assert {published[k] for k in ("op", "bib", "reason", "race")} == \
                {"dnf", "1", "hypothermia", rid}
            await produce(p, [rr.control_log(published)])
            update = await receive(ws)
            while "log" not in update["data"]:
                update = await receive(ws)
            assert update["data"]["log"][0]["id"] == ack["id"]
            assert update["data"]["log"][0]["result"] == "applied"


async def read_control(bootstrap: str, race: str) -> dict:  # type: ignore[type-arg]
    import orjson

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(CONTROL, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                for msg in msgs:
                    if msg.key == race.encode():
                        return orjson.loads(msg.value)  # type: ignore[no-any-return]
        raise AssertionError(f"no control.v1 record of {race}")
    finally:
        await consumer.stop()


async def test_a_never_reading_client_is_closed_others_keep_up(kafka_bootstrap, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rr = RaceRecords(unique_race(tmp_path), tick_ms=10_000)
    rid = rr.race.id
    settings = settings_for(kafka_bootstrap, rr.race_dir, slow_client_s=1.0, ws_send_buffer=4096)
    ticks = list(rr.run())
    async with producer(kafka_bootstrap) as p:
        await produce(p, ticks[0])
        async with running(settings) as b:
            url = f"ws://127.0.0.1:{b.ws_port}/"
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            sock.connect(("127.0.0.1", b.ws_port))
            slow = await websockets.connect(url, sock=sock, max_queue=1)
            names = [f"standings:{rid}", f"flow:{rid}", f"control:{rid}"] + \
                [f"runner:{rid}:{bib}" for bib in ("1", "2", "3")] + \
                [f"checkpoint:{rid}:{cp.id}" for cp in rr.race.checkpoints]
            for name in names:
                await send(slow, {"op": "subscribe", "channel": name, "token": TOKEN})
            async with websockets.connect(url) as ws:
                await send(ws, {"op": "subscribe", "channel": f"standings:{rid}"})
                await receive(ws)
                sent_at: dict[int, float] = {}
                delays = []
                for records in ticks[1:]:
                    await produce(p, records)
                    sent_at[standings_seq(records)] = time.monotonic()
                    await asyncio.sleep(0.01)
                    while True:  # take what has arrived, without waiting
                        try:
                            frame = await receive(ws, timeout=0.001)
                        except TimeoutError:
                            break
                        delays.append(time.monotonic() - sent_at[frame["seq"]])
                    if b.metrics.disconnects.labels("slow")._value.get() >= 1 and \
                            len(delays) > 50:
                        break
                assert b.metrics.disconnects.labels("slow")._value.get() == 1
                assert len(delays) > 50 and max(delays) < 0.5, max(delays)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    while True:
                        await slow.recv()
            rcvd = closed.value.rcvd
            assert rcvd is None or (rcvd.code == 4008 and "too slow" in rcvd.reason)


async def test_requests_are_answered_and_heartbeats_come(kafka_bootstrap, tmp_path) -> None:  # type: ignore[no-untyped-def]
    race_dir = unique_race(tmp_path)
    rid = race_dir.name
    settings = settings_for(kafka_bootstrap, race_dir, heartbeat_s=0.3)
    async with running(settings) as b, websockets.connect(f"ws://127.0.0.1:{b.ws_port}/") as ws:
        answers = {}
        for message, key in ((b"not json", "bad_json"), ({"op": "dance"}, "unknown_op"),
                             ({"op": "subscribe", "channel": "scores:x"}, "unknown_channel"),
                             ({"op": "subscribe", "channel": "flow:other"}, "unknown_race"),
                             ({"op": "subscribe", "channel": f"flow:{rid}", "since": "1"},
                              "bad_request"),
                             ({"op": "unsubscribe", "channel": f"flow:{rid}"}, "not_subscribed")):
            await (ws.send(message) if isinstance(message, bytes) else send(ws, message))
            answers[key] = await receive(ws)
        assert {k: a["code"] for k, a in answers.items()} == {k: k for k in answers}
        assert all(len(a["message"]) > 10 for a in answers.values())
        await send(ws, {"op": "subscribe", "channel": f"flow:{rid}"})
        snap = await receive(ws)
        assert (snap["type"], snap["seq"], snap["data"]) == ("snapshot", 0, {"runners": {}})
        await send(ws, {"op": "unsubscribe", "channel": f"flow:{rid}"})
        assert await receive(ws) == {"type": "unsubscribed", "channel": f"flow:{rid}"}
        raw = await asyncio.wait_for(ws.recv(), 2)
        assert type(decode_frame(raw)).__name__ == "Heartbeat"
        beat = orjson.loads(raw)
        assert beat["type"] == "heartbeat" and abs(beat["t_ms"] - time.time() * 1000) < 5000
        # The kernel holds little for a client (docs/broadcast.md): 128 KiB, doubled by it,
        # not the megabytes of an autotuned send buffer.
        (conn,) = b.websocket.connections
        server_sock = conn.ws.transport.get_extra_info("socket")
        assert server_sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * 128 * 1024


async def test_command_errors_carry_the_command_id(kafka_bootstrap, tmp_path) -> None:  # type: ignore[no-untyped-def]
    race_dir = unique_race(tmp_path)
    rid = race_dir.name
    async with running(settings_for(kafka_bootstrap, race_dir)) as b, \
            websockets.connect(f"ws://127.0.0.1:{b.ws_port}/") as ws:
        # Not subscribed to control yet: refused, with the id the client gave.
        await send(ws, {"op": "command", "race": rid,
                        "command": {"id": "p-1", "op": "dnf", "bib": "1"}})
        refused = await receive(ws)
        assert (refused["code"], refused["id"]) == ("not_subscribed", "p-1")
        await send(ws, {"op": "subscribe", "channel": f"control:{rid}", "token": TOKEN})
        assert (await receive(ws))["type"] == "snapshot"
        # Two commands in flight, the second invalid: each answer names its command.
        await send(ws, {"op": "command", "race": rid,
                        "command": {"id": "p-2", "op": "weather", "zone": "top-ridge",
                                    "on": True}})
        await send(ws, {"op": "command", "race": rid,
                        "command": {"id": "p-3", "op": "weather", "zone": "summit", "on": True}})
        answers = {a["id"]: a for a in [await receive(ws), await receive(ws)]}
        assert answers["p-2"]["type"] == "ack"
        assert answers["p-3"]["type"] == "error" and answers["p-3"]["code"] == "invalid_command"
        assert "summit" in answers["p-3"]["message"]
        # An id that is not usable cannot be echoed: the error says what is wrong with it.
        await send(ws, {"op": "command", "race": rid, "command": {"id": 7, "op": "dnf",
                                                                   "bib": "1"}})
        bad = await receive(ws)
        assert bad["code"] == "invalid_command" and "id" not in bad and "'id'" in bad["message"]
        # Kafka does not take it: publish_failed names the id, the server's own when the
        # client gave none.
        await b.publisher.stop()
        for command, want in (({"id": "p-4", "op": "dnf", "bib": "1"}, "p-4"),
                              ({"op": "dnf", "bib": "2"}, None)):
            await send(ws, {"op": "command", "race": rid, "command": command})
            failed = await receive(ws)
            assert failed["code"] == "publish_failed"
            assert failed["id"] == want if want else failed["id"].startswith("c-")


async def test_only_the_allowed_origins_open_the_websocket(kafka_bootstrap, tmp_path) -> None:  # type: ignore[no-untyped-def]
    race_dir = unique_race(tmp_path)
    settings = settings_for(kafka_bootstrap, race_dir,
                            origins=("https://live.example.org", "http://localhost:8080"))
    async with running(settings) as b:
        url = f"ws://127.0.0.1:{b.ws_port}/"
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url, origin="https://elsewhere.example")  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
        for origin in ("https://live.example.org", "http://localhost:8080", None):
            async with websockets.connect(url, origin=origin) as ws:  # type: ignore[arg-type]
                await send(ws, {"op": "ping"})
                assert (await receive(ws))["type"] == "pong", origin


def test_origins_must_be_scheme_host_port() -> None:
    from broadcast.settings import parse_origins

    assert parse_origins(" https://Live.example.org, http://localhost:8080 ,") == \
        ("https://live.example.org", "http://localhost:8080")
    for bad in ("live.example.org", "https://live.example.org/", "ftp://x", "https://"):
        with pytest.raises(ValueError, match="not an origin"):
            parse_origins(bad)
