"""The demo's player without a broker: the moved race folder, time compression, batches
of fixes posted to ingest (a local HTTP server standing in for it, answering as
docs/ingest.md says, or away: refusing connections, 503 with Retry-After, resetting
connections, not answering), the devices' buffers, the progress line, the demo's
supervision of the player, the incident plan, and race control's command through a real
broadcaster websocket server whose publisher keeps what it is given."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import pytest
from aiohttp import web

from broadcast.commands import Publisher
from broadcast.connections import WebsocketServer
from broadcast.credentials import Credentials
from broadcast.hub import Hub
from broadcast.metrics import BroadcastMetrics
from broadcast.settings import BroadcastSettings
from broadcast.views import RaceView
from race_engine.fixes import encode_fix
from race_engine.model import Fix
from race_engine.racefolder import load_race
from race_engine.simulate import SimOptions, simulate
from zegama_live import demo
from zegama_live.demo_player import (
    MAX_RETRY_AFTER_S,
    Backoff,
    Buffers,
    Incident,
    Incidents,
    Ingest,
    PlayError,
    Progress,
    issue_command,
    plan_incidents,
    play,
    progress_line,
    retry_after,
    schedule,
    send_command,
    shift,
    shifted_race,
)

MINI = Path(__file__).resolve().parents[1] / "data" / "races" / "mini"
KEY = "ingest-key-0123456789"
TOKEN = "t-demo-0123456789"
Json = dict[str, Any]


# ------------------------------------------------------------- ingest, standing in


@dataclass
class Posted:
    """One request the stand-in received."""

    at: float  # time.monotonic() when it arrived
    headers: dict[str, str]
    fixes: list[Json]
    peer_port: int


# A queued answer: (status, JSON body, headers), or what a broken ingest does instead:
# "reset" (the connection reset, no answer) or "hang" (no answer for HANG_S).
Scripted = tuple[int, Json, dict[str, str]] | Literal["reset", "hang"]
HANG_S = 1.0


@dataclass
class IngestStandIn:
    """``POST /v1/pings`` on a background thread, answering each batch as ingest does
    (202 with the count accepted, which are kept in ``accepted``) unless an answer is
    queued in ``answers``."""

    posted: list[Posted] = field(default_factory=list)
    answers: deque[Scripted] = field(default_factory=deque)
    accepted: list[Json] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner: web.AppRunner | None = None

    async def pings(self, request: web.Request) -> web.StreamResponse:
        fixes = orjson.loads(await request.read())
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.posted.append(Posted(time.monotonic(), dict(request.headers), fixes,
                                  peer[1] if peer else 0))
        answer = self.answers.popleft() if self.answers else None
        if answer == "reset" and request.transport is not None:
            sock = request.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.transport.abort()  # with SO_LINGER 0: a TCP reset
            return web.Response()
        if answer == "hang":
            await asyncio.sleep(HANG_S)
            return web.json_response({"error": "too late"}, status=503)
        if isinstance(answer, tuple):
            status, body, headers = answer
            return web.json_response(body, status=status, headers=headers)
        self.accepted.extend(fixes)
        return web.json_response({"accepted": len(fixes), "rejected": []}, status=202)

    def start(self, port: int = 0) -> int:
        app = web.Application()
        app.router.add_post("/v1/pings", self.pings)
        self.runner = runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)

        async def start() -> int:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", port)
            await site.start()
            return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

        self.port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        return self.port

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def ingest_server() -> Iterator[IngestStandIn]:
    stand_in = IngestStandIn()
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


def ingest_for(server: IngestStandIn, timeout_s: float = 5) -> Ingest:
    return Ingest(f"http://127.0.0.1:{server.port}", KEY, timeout_s=timeout_s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------- the race folder


def test_the_race_folder_is_copied_with_its_start_moved(tmp_path: Path) -> None:
    start_ms = 1_800_000_000_000
    folder = shifted_race(MINI, tmp_path, "mini-today", start_ms, "Europe/Madrid")
    assert folder == tmp_path / "mini-today"
    race = load_race(folder)
    assert race.start_ms == start_ms and race.id == "mini-today"
    assert 'start = "2027-01-15T09:00:00+01:00"' in (folder / "race.toml").read_text()
    assert (folder / "entrants.csv").read_text() == (MINI / "entrants.csv").read_text()
    # A second run replaces the first one's copy.
    (folder / "left-over.txt").write_text("x")
    shifted_race(MINI, tmp_path, "mini-today", start_ms + 3_600_000, "Europe/Madrid")
    assert not (folder / "left-over.txt").exists()
    assert load_race(folder).start_ms == start_ms + 3_600_000


def test_a_race_toml_without_a_start_line_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "race.toml").write_text('[race]\nname = "No start"\n')
    with pytest.raises(ValueError, match=r"no 'start = \"\.\.\.\"' line under \[race\]"):
        shifted_race(src, tmp_path / "out", "nostart", 0, "UTC")


# ---------------------------------------------------------------- time compression


def test_a_shifted_fix_keeps_everything_but_its_time() -> None:
    fix = Fix("ZGM-0007", 1_000, 43.0, -2.3, 671.0, 5.0, 0.8, True)
    moved = shift(fix, 60_000)
    assert moved.t == 61_000
    assert (moved.device, moved.lat, moved.lon, moved.ele, moved.acc, moved.bat, moved.sos) \
        == (fix.device, fix.lat, fix.lon, fix.ele, fix.acc, fix.bat, fix.sos)


def test_the_schedule_compresses_race_time_by_the_speed() -> None:
    race = load_race(MINI)
    start_ms = race.start_ms + 86_400_000  # the demo's today
    fixes = [Fix("D1", race.start_ms - 5_000, 43.0, -2.3),  # before the start: at once
             Fix("D1", race.start_ms + 60_000, 43.0, -2.3),
             Fix("D2", race.start_ms + 3_600_000, 43.1, -2.2, bat=0.5)]
    arrivals = [race.start_ms - 4_000, race.start_ms + 62_000, race.start_ms + 3_601_000]
    out = list(schedule(iter(zip(fixes, arrivals, strict=True)), race, start_ms, speed=20))
    assert [due for due, _, _ in out] == [0.0, 62 / 20, 3601 / 20]
    assert [race_ms for _, _, race_ms in out] == [-4_000, 62_000, 3_601_000]
    # The device JSON of each fix, its time moved to the demo's start.
    assert [fix for _, fix, _ in out] == [encode_fix(shift(f, 86_400_000)) for f in fixes]


def test_a_simulated_field_is_scheduled_in_arrival_order_within_the_race() -> None:
    race = load_race(MINI)
    sim = simulate(race, np.random.default_rng(3), SimOptions(runners=len(race.entrants)))
    out = list(schedule(sim.pings(), race, race.start_ms, speed=60))
    dues = [due for due, _, _ in out]
    assert len(out) > 100 and dues == sorted(dues)
    assert max(dues) < race.time_limit_s / 60 + 60  # the whole race in about a minute
    assert {f["device"] for _, f, _ in out} <= {e.device for e in race.entrants}


# ------------------------------------------------------------------------ batches


def virtual_clock() -> tuple[Any, Any, list[float]]:
    """A clock that moves only when slept on, and the list of the sleeps."""
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s
    return (lambda: now[0]), sleep, sleeps


def items(dues: list[float]) -> Iterator[tuple[float, dict[str, object], int]]:
    for i, due in enumerate(dues):
        yield due, {"device": f"D{i}", "ts": i, "lat": 43.0, "lon": -2.3}, int(due * 1000)


def test_fixes_due_together_go_in_one_request_up_to_the_batch_size(
        ingest_server: IngestStandIn) -> None:
    clock, sleep, sleeps = virtual_clock()
    progress = Progress()
    seen = [(p.sent, p.race_ms) for p in play(items([0, 0, 0, 5, 5, 12]),
                                              ingest_for(ingest_server), progress,
                                              max_batch=2, clock=clock, sleep=sleep)]
    batches = [[f["device"] for f in p.fixes] for p in ingest_server.posted]
    # Full at two; then what is due is sent before waiting for the next fix's time.
    assert batches == [["D0", "D1"], ["D2"], ["D3", "D4"], ["D5"]]
    assert sleeps == [5, 7]
    # The progress after each request: fixes sent, race time of the latest fix played.
    assert seen == [(2, 0), (3, 0), (5, 5000), (6, 12000)]
    assert progress.sent == 6 and progress.rejected == 0 and progress.race_ms == 12_000


def test_the_player_keeps_to_the_compressed_clock_on_the_wall(
        ingest_server: IngestStandIn) -> None:
    race = load_race(MINI)
    pings = [(Fix("D1", race.start_ms + s * 1000, 43.0, -2.3), race.start_ms + s * 1000)
             for s in (0, 30, 60, 90, 120)]
    began = time.monotonic()
    list(play(schedule(iter(pings), race, race.start_ms, speed=200), ingest_for(ingest_server),
              Progress()))
    took = time.monotonic() - began
    # Two race minutes at 200x are 0.6 s on the wall: no fix goes before its time.
    assert 0.6 <= took < 3.0
    for posted in ingest_server.posted:
        first_s = (posted.fixes[0]["ts"] - race.start_ms) / 1000
        assert posted.at - began >= first_s / 200 - 0.01
    assert [len(p.fixes) for p in ingest_server.posted] == [1, 1, 1, 1, 1]


# ----------------------------------------------------------------- ingest over HTTP


def test_a_batch_is_posted_with_the_key_as_json_on_one_connection(
        ingest_server: IngestStandIn) -> None:
    ingest = ingest_for(ingest_server)
    batch: list[dict[str, object]] = [{"device": "ZGM-0001", "ts": 1, "lat": 43.0, "lon": -2.3}]
    first_answer, second_answer = ingest.post(batch), ingest.post(batch * 3)
    ingest.close()
    assert (first_answer.status, first_answer.json()) == (202, {"accepted": 1, "rejected": []})
    assert second_answer.json() == {"accepted": 3, "rejected": []}
    first, second = ingest_server.posted
    assert first.headers["Authorization"] == f"Bearer {KEY}"
    assert first.headers["Content-Type"] == "application/json"
    assert first.fixes == batch and len(second.fixes) == 3
    assert first.peer_port == second.peer_port  # keep-alive: one connection


def test_an_answer_says_what_ingest_said_or_why_there_was_none(
        ingest_server: IngestStandIn) -> None:
    ingest_server.answers.append((503, {"error": "kafka_unavailable"}, {"Retry-After": "5"}))
    answer = ingest_for(ingest_server).post([{"device": "D"}])
    assert (answer.status, answer.retry_after_s, answer.json()) == (
        503, 5.0, {"error": "kafka_unavailable"})
    nowhere = Ingest("http://127.0.0.1:9/", KEY, timeout_s=2).post([{"device": "D"}])
    assert (nowhere.status, nowhere.error) == (0, "connection to 127.0.0.1:9 refused")


def test_a_connection_ingest_dropped_is_replaced_at_once(ingest_server: IngestStandIn) -> None:
    ingest = ingest_for(ingest_server)
    assert ingest.post([{"device": "D", "n": 1}]).status == 202
    ingest_server.answers.append("reset")  # as ingest closing an idle keep-alive connection
    assert ingest.post([{"device": "D", "n": 2}]).status == 202
    ingest.close()
    first, dropped, again = ingest_server.posted
    assert dropped.peer_port == first.peer_port != again.peer_port
    assert [f["n"] for f in ingest_server.accepted] == [1, 2]
    # On a new connection a reset is an answer, not tried again at once.
    ingest_server.answers.append("reset")
    fresh = ingest_for(ingest_server).post([{"device": "D", "n": 3}])
    assert fresh.status == 0 and "reset" in fresh.error and len(ingest_server.posted) == 4


def test_a_request_with_no_answer_in_time_is_an_answer_too(
        ingest_server: IngestStandIn) -> None:
    ingest_server.answers.append("hang")
    answer = ingest_for(ingest_server, timeout_s=0.2).post([{"device": "D"}])
    assert (answer.status, answer.error) == (
        0, f"no answer from 127.0.0.1:{ingest_server.port} within 0.2 s")


def test_retry_after_is_read_in_seconds_or_as_a_date() -> None:
    assert retry_after("5") == 5.0 and retry_after(None) is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now_s=1445412470.0) == 10.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now_s=1445412490.0) == 0.0
    assert retry_after("soon") is None and retry_after("nan") is None
    assert retry_after("86400") == MAX_RETRY_AFTER_S


def test_refusals_are_counted_and_the_first_reason_kept(ingest_server: IngestStandIn) -> None:
    refused = [{"index": 1, "reason": "unknown_device", "message": "not in entrants.csv"}]
    ingest_server.answers.extend([
        (202, {"accepted": 1, "rejected": refused}, {}),
        (422, {"accepted": 0, "rejected": [{"index": 0, "reason": "future_time"}]}, {}),
    ])
    progress = Progress()
    clock, sleep, _ = virtual_clock()
    list(play(items([0, 0, 1]), ingest_for(ingest_server), progress, max_batch=2,
              clock=clock, sleep=sleep))
    assert (progress.sent, progress.rejected) == (1, 2)
    assert progress.first_refusal == "unknown_device"
    assert len(ingest_server.posted) == 2  # refused fixes are not sent again


# ------------------------------------------------- ingest or Kafka away: the devices wait


def device_items(devices: int, per_device: int, every_s: float) -> list[
        tuple[float, dict[str, object], int]]:
    """``per_device`` fixes of each device, one round every ``every_s``; ``n`` numbers a
    device's fixes in the order it makes them."""
    return [(k * every_s, {"device": f"D{d}", "ts": k, "lat": 43.0, "lon": -2.3, "n": k},
             int(k * every_s * 1000))
            for k in range(per_device) for d in range(devices)]


def by_device(fixes: list[Json]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for fix in fixes:
        out.setdefault(fix["device"], []).append(fix["n"])
    return out


def test_every_fix_gets_through_an_outage_of_ingest_then_kafka_in_order(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="zegama_live.demo_player")
    stand_in = IngestStandIn()
    port = free_port()
    # No ingest for 0.4 s (connection refused); then Kafka away: 503 with Retry-After 1;
    # then connections reset and a request left unanswered; then ingest takes fixes.
    stand_in.answers.extend([(503, {"error": "kafka_unavailable"}, {"Retry-After": "1"}),
                             "reset", "reset", "reset", "hang"])
    coming_up = threading.Timer(0.4, stand_in.start, (port,))
    coming_up.start()
    progress = Progress()
    seen: list[tuple[str, str]] = []
    began = time.monotonic()
    try:
        for p in play(device_items(3, 12, 0.1), Ingest(f"http://127.0.0.1:{port}", KEY,
                                                        timeout_s=0.3), progress,
                      max_batch=5, backoff=Backoff(first_s=0.05, max_s=0.2), tick_s=0.1):
            seen.append((p.waiting_for, p.waiting_why))
        took = time.monotonic() - began
    finally:
        coming_up.join()
        stand_in.stop()
    # Every fix accepted once, each device's in the order it made them: none lost.
    assert by_device(stand_in.accepted) == {f"D{d}": list(range(12)) for d in range(3)}
    assert len(stand_in.accepted) == 36
    assert (progress.sent, progress.buffered, progress.dropped, progress.discarded) == (
        36, 0, 0, 0)
    assert progress.waiting_for == "" and progress.retries >= 5
    assert took < 5.0
    # What the devices waited for, in turn, as the demo's status line shows it.
    waits = [what for what, _ in seen]
    kinds = [w for i, w in enumerate(waits) if i == 0 or w != waits[i - 1]]
    assert kinds == ["ingest", "Kafka", "ingest", ""]
    whys = {why for _, why in seen}
    assert f"connection to 127.0.0.1:{port} refused" in whys
    assert "ingest answers 503" in whys
    assert f"connection to 127.0.0.1:{port} reset" in whys
    assert f"no answer from 127.0.0.1:{port} within 0.3 s" in whys
    # Retry-After was kept: nothing was sent within its second after the 503.
    posted = stand_in.posted
    assert posted[1].at - posted[0].at >= 0.95
    # While waiting, the batches were the oldest fixes of all devices together.
    assert [f["n"] for f in posted[0].fixes] == [0, 0, 0, 1, 1]
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith(f"waiting for ingest (connection to 127.0.0.1:{port} "
                                  "refused): the devices keep their fixes")
    assert any(m.startswith("waiting for Kafka (ingest answers 503)") for m in messages)
    assert any(m.startswith("ingest takes fixes again after ") and
               m.endswith("sending the 36 buffered fixes") for m in messages)
    assert messages[-1].startswith("buffered fixes sent: 36, in ")


def test_a_full_device_buffer_drops_its_oldest_fixes_and_counts_them(
        ingest_server: IngestStandIn, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="zegama_live.demo_player")
    ingest_server.answers.extend([(503, {"error": "kafka_unavailable"},
                                   {"Retry-After": "2"})] * 5)
    clock, sleep, _ = virtual_clock()
    progress = Progress()
    lines = [progress_line(p, None, None)
             for p in play(device_items(2, 10, 1.0), ingest_for(ingest_server), progress,
                           max_buffer=3, clock=clock, sleep=sleep)]
    # Requests at 0, 2, 4, 6, 8 s answered 503; at 10 s each device holds its last 3.
    assert [len(p.fixes) for p in ingest_server.posted] == [2, 6, 6, 6, 6, 6]
    assert by_device(ingest_server.accepted) == {"D0": [7, 8, 9], "D1": [7, 8, 9]}
    assert (progress.sent, progress.dropped, progress.buffered) == (6, 14, 0)
    assert ("race 0:00:05  waiting for Kafka 5 s (ingest answers 503), 6 fixes buffered  "
            "fixes sent 0 (6 dropped from full buffers)  leader bib -") in "\n".join(lines)
    assert lines[-1].startswith("race 0:00:09  fixes sent 6 (14 dropped from full buffers)")
    assert caplog.records[-1].getMessage() == (
        "buffered fixes sent: 6, in 0.0 s; 14 dropped from full buffers")


def test_429_408_and_5xx_are_waited_out_too(ingest_server: IngestStandIn) -> None:
    ingest_server.answers.extend([(429, {"error": "slow_down"}, {"Retry-After": "7"}),
                                  (408, {}, {}), (502, {}, {}), (500, {}, {})])
    clock, sleep, _ = virtual_clock()
    progress = Progress()
    waits = [(p.waiting_for, p.waiting_why) for p in play(
        items([0]), ingest_for(ingest_server), progress, clock=clock, sleep=sleep,
        backoff=Backoff(first_s=1.0, max_s=1.0))]
    assert ("ingest", "ingest answers 429") in waits and ("ingest", "ingest answers 502") in waits
    assert progress.sent == 1 and progress.retries == 4 and len(ingest_server.posted) == 5
    assert 7 + 3 * 0.5 <= clock() <= 7 + 3 * 1.0  # Retry-After, then backoff with jitter


def test_a_malformed_request_is_logged_once_and_its_fixes_dropped(
        ingest_server: IngestStandIn, caplog: pytest.LogCaptureFixture) -> None:
    ingest_server.answers.extend([(400, {"error": "bad_json", "message": "not JSON"}, {}),
                                  (400, {"error": "bad_json"}, {}),
                                  (401, {"error": "bad_key"}, {})])
    clock, sleep, _ = virtual_clock()
    progress = Progress()
    list(play(items([0, 1, 2, 3]), ingest_for(ingest_server), progress, max_batch=1,
              clock=clock, sleep=sleep))
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert errors[0].startswith('ingest refused a request of the player as malformed: 400 '
                                '{"error": "bad_json", "message": "not JSON"}; its 1 fixes are '
                                'dropped')
    assert "401" in errors[1] and "bad_key" in errors[1]
    assert [f["device"] for f in ingest_server.accepted] == ["D3"]
    assert (progress.sent, progress.discarded, progress.retries) == (1, 3, 0)
    assert len(ingest_server.posted) == 4  # dropped, not sent again


def test_a_device_buffer_keeps_order_and_its_bound() -> None:
    buffers = Buffers(max_per_device=2)
    for n, device in enumerate("ABAAB"):
        buffers.add({"device": device, "n": n})
    assert (buffers.pending, buffers.dropped) == (4, 1)  # A's first fix made room
    oldest = buffers.oldest(3)
    assert [(f["device"], f["n"]) for _, f in oldest] == [("B", 1), ("A", 2), ("A", 3)]
    buffers.remove(oldest)
    assert [(f["device"], f["n"]) for _, f in buffers.oldest(10)] == [("B", 4)]
    with pytest.raises(ValueError, match="at least 1 fix, got 0"):
        Buffers(0)


# ----------------------------------------------- the demo supervising the player


def test_the_demo_waits_out_kafka_and_plays_the_race_to_its_end(
        ingest_server: IngestStandIn, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(demo, "_running", lambda name: True)
    ingest_server.answers.extend([(503, {"error": "kafka_unavailable"}, {"Retry-After": "1"}),
                                  "reset"])
    progress = Progress()
    tries: list[str] = []

    def issue(incident: Incident) -> bool:  # the first try finds Kafka away too
        tries.append(incident.says)
        return len(tries) > 1

    incidents = Incidents([Incident(0, {"op": "weather"}, "weather alert on")])
    code = demo.follow(play(device_items(2, 8, 0.1), ingest_for(ingest_server), progress,
                            backoff=Backoff(first_s=0.05, max_s=0.1), tick_s=0.1),
                       progress, incidents, issue=issue,
                       status=lambda p: progress_line(p, None, None),
                       every_s=0.2, retry_s=0.3, settle_s=0)
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "waiting for Kafka" in out and "(ingest answers 503)" in out
    assert "race control: weather alert on will be sent again in 0.3 s" in out
    assert tries == ["weather alert on", "weather alert on"]
    assert out.rstrip().endswith("race over: every fix played")
    assert by_device(ingest_server.accepted) == {"D0": list(range(8)), "D1": list(range(8))}


def test_the_demo_stops_when_a_service_stopped(
        ingest_server: IngestStandIn, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(demo, "_running", lambda name: name != "process")
    code = demo.follow(play(items([0, 0.05, 0.1]), ingest_for(ingest_server), Progress()),
                       Progress(), Incidents([]), issue=lambda i: True,
                       status=lambda p: "status", every_s=0, settle_s=0)
    assert code == 1
    assert f"error: process stopped; see {demo.DEMO_DIR / 'process.log'}" in \
        capsys.readouterr().err


# --------------------------------------------------------------------- progress text


def test_the_progress_line_says_where_the_race_is() -> None:
    p = Progress(sent=12_345, rejected=0, race_ms=3_723_000)
    board = {"board": {"leader": "7", "finishers": [{"bib": "7"}, {"bib": "3"}]}}
    line = progress_line(p, board, {"alerts": [{"id": "a"}]})
    assert line == ("race 1:02:03  fixes sent 12,345  leader bib 7  finished 2  "
                    "open alerts 1")
    refused = Progress(sent=10, rejected=1_200, race_ms=59_999, first_refusal="future_time")
    assert progress_line(refused, {"board": None}, None) == (
        "race 0:00:59  fixes sent 10 (1,200 refused: future_time)  leader bib -  "
        "finished ?  open alerts ?")
    assert progress_line(Progress(race_ms=-4000), None, {"alerts": []}).startswith(
        "race 0:00:00  fixes sent 0  leader bib -  finished ?  open alerts 0")


# --------------------------------------------------------------------- incidents


def test_the_weather_incident_is_planned_for_the_first_danger_zone() -> None:
    race = load_race(MINI)
    (weather,) = plan_incidents(race, 90 * 60_000)
    zone = race.danger_zones[0]
    assert weather.at_ms == 90 * 60_000
    assert weather.command["op"] == "weather" and weather.command["zone"] == zone.id
    assert weather.command["on"] is True and zone.name in weather.says
    assert plan_incidents(replace(race, danger_zones=()), 0) == []
    with pytest.raises(ValueError, match=">= 0 ms, got -1"):
        plan_incidents(race, -1)


def test_incidents_are_handed_out_once_when_the_race_clock_reaches_them() -> None:
    a, b, c = (Incident(t, {"op": "weather"}, f"at {t}") for t in (5_000, 1_000, 9_000))
    plan = Incidents([a, b, c])
    assert plan.due(500) == []
    assert plan.due(5_000) == [b, a]  # in race-time order, both passed
    assert plan.due(6_000) == []
    assert plan.due(60_000) == [c] and plan.due(120_000) == []


# ------------------------------------------------ race control through the broadcaster


class KeptPublisher(Publisher):
    """The broadcaster's publisher, keeping the records instead of sending them to Kafka."""

    def __init__(self) -> None:
        super().__init__("unused:9092")
        self.records: list[Json] = []
        self.kafka_away = False

    async def publish(self, record: Json) -> None:
        if self.kafka_away:
            raise TimeoutError("no acknowledgement")
        self.records.append(record)


async def test_the_weather_command_goes_through_the_broadcaster_as_race_control() -> None:
    race = load_race(MINI)
    settings = BroadcastSettings(host="127.0.0.1", http_port=0, ws_port=0, races=(MINI,),
                                 control_tokens=(("demo", TOKEN),), tick_ms=50)
    publisher = KeptPublisher()
    server = WebsocketServer(settings, Hub({race.id: RaceView(race)}),
                             Credentials((), settings.control_tokens), publisher,
                             BroadcastMetrics())
    port = await server.start()
    url = f"ws://127.0.0.1:{port}/"
    try:
        (weather,) = plan_incidents(race, 0)
        before = int(time.time() * 1000)
        record = await send_command(url, TOKEN, race.id, weather.command)
        assert publisher.records == [record]
        assert record["by"] == "control:demo" and record["at_ms"] >= before
        assert record["id"].startswith("c-demo-") and record["race"] == race.id
        assert {k: record[k] for k in weather.command} == weather.command
        # A wrong token and an unknown zone are refused, naming why; nothing published.
        with pytest.raises(PlayError, match="refused the weather command: unauthorized") as e:
            await send_command(url, "guess", race.id, weather.command)
        assert e.value.retry is False  # sending it again would not help
        with pytest.raises(PlayError, match="invalid_command: danger zone 'summit'") as e:
            await send_command(url, TOKEN, race.id, {**weather.command, "zone": "summit"})
        assert e.value.retry is False
        assert len(publisher.records) == 1
        # Kafka away: not published, and worth sending again later.
        publisher.kafka_away = True
        with pytest.raises(PlayError, match="publish_failed") as e:
            await send_command(url, TOKEN, race.id, weather.command)
        assert e.value.retry is True and len(publisher.records) == 1
    finally:
        await server.stop()


def test_no_broadcaster_is_a_clear_error() -> None:
    with pytest.raises(PlayError, match=r"ws://127\.0\.0\.1:9/ failed .*is it running") as e:
        issue_command("ws://127.0.0.1:9/", TOKEN, "mini", {"op": "weather"})
    assert e.value.retry is True
