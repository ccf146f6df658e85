"""The demo's player without a broker: the moved race folder, time compression, batches
of fixes posted to ingest (a local HTTP server standing in for it, answering as
docs/ingest.md says), the progress line, the incident plan, and race control's command
through a real broadcaster websocket server whose publisher keeps what it is given."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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
from zegama_live.demo_player import (
    Incident,
    Incidents,
    Ingest,
    PlayError,
    Progress,
    issue_command,
    plan_incidents,
    play,
    progress_line,
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


@dataclass
class IngestStandIn:
    """``POST /v1/pings`` on a background thread, answering each batch as ingest does
    (202 with the count accepted) unless an answer is queued in ``answers``."""

    posted: list[Posted] = field(default_factory=list)
    answers: deque[tuple[int, Json, dict[str, str]]] = field(default_factory=deque)
    port: int = 0

    async def pings(self, request: web.Request) -> web.Response:
        fixes = orjson.loads(await request.read())
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.posted.append(Posted(time.monotonic(), dict(request.headers), fixes,
                                  peer[1] if peer else 0))
        if self.answers:
            status, body, headers = self.answers.popleft()
        else:
            status, body, headers = 202, {"accepted": len(fixes), "rejected": []}, {}
        return web.json_response(body, status=status, headers=headers)


@pytest.fixture
def ingest_server() -> Iterator[IngestStandIn]:
    stand_in = IngestStandIn()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    app = web.Application()
    app.router.add_post("/v1/pings", stand_in.pings)
    runner = web.AppRunner(app, access_log=None)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    stand_in.port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield stand_in
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def ingest_for(server: IngestStandIn) -> Ingest:
    return Ingest(f"http://127.0.0.1:{server.port}", KEY, timeout_s=5)


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
    assert ingest.post(batch) == {"accepted": 1, "rejected": []}
    assert ingest.post(batch * 3) == {"accepted": 3, "rejected": []}
    ingest.close()
    first, second = ingest_server.posted
    assert first.headers["Authorization"] == f"Bearer {KEY}"
    assert first.headers["Content-Type"] == "application/json"
    assert first.fixes == batch and len(second.fixes) == 3
    assert first.peer_port == second.peer_port  # keep-alive: one connection


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


def test_a_503_is_retried_after_its_retry_after(ingest_server: IngestStandIn) -> None:
    ingest_server.answers.append((503, {"error": "kafka_unavailable"}, {"Retry-After": "0"}))
    assert ingest_for(ingest_server).post([{"device": "D"}]) == {"accepted": 1, "rejected": []}
    assert len(ingest_server.posted) == 2 and ingest_server.posted[0].fixes == [{"device": "D"}]
    ingest_server.answers.extend([(503, {}, {"Retry-After": "0"})] * 10)
    with pytest.raises(PlayError, match="kept answering 503"):
        ingest_for(ingest_server).post([{"device": "D"}])


def test_a_refused_key_or_no_ingest_is_a_clear_error(ingest_server: IngestStandIn) -> None:
    ingest_server.answers.append((401, {"error": "bad_key"}, {}))
    with pytest.raises(PlayError, match=r"ingest answered 401: .*bad_key"):
        ingest_for(ingest_server).post([{"device": "D"}])
    nowhere = Ingest("http://127.0.0.1:9/", KEY, timeout_s=2)
    with pytest.raises(PlayError, match=r"127\.0\.0\.1:9 did not answer .*is it running"):
        nowhere.post([{"device": "D"}])


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

    async def publish(self, record: Json) -> None:
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
        with pytest.raises(PlayError, match="refused the weather command: unauthorized"):
            await send_command(url, "guess", race.id, weather.command)
        with pytest.raises(PlayError, match="invalid_command: danger zone 'summit'"):
            await send_command(url, TOKEN, race.id, {**weather.command, "zone": "summit"})
        assert len(publisher.records) == 1
    finally:
        await server.stop()


def test_no_broadcaster_is_a_clear_error() -> None:
    with pytest.raises(PlayError, match=r"ws://127\.0\.0\.1:9/ failed .*is it running"):
        issue_command("ws://127.0.0.1:9/", TOKEN, "mini", {"op": "weather"})
