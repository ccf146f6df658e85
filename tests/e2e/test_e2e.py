"""The whole platform end to end: a short simulated race into ingest over HTTP, one
processor worker, the broadcaster, a websocket spectator, race control and the feed.

The race folder is copied with its start at now (as the demo does), so the processors'
clock and the alert rules see a race happening today; fixes are played many times faster
than real time.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import websockets
from broadcast_client import ClientChannel, unbatched
from processor_harness import read_all, wait_for

from broadcast.app import Broadcaster
from broadcast.settings import BroadcastSettings
from race_engine.fixes import encode_fix
from race_engine.racefolder import load_race
from race_engine.replay import final_splits, replay
from race_engine.simulate import SimOptions, simulate
from zegama_live.demo_player import Ingest, Progress, play, schedule, shift, shifted_race
from zegama_live.records.websocket import decode_frame
from zegama_live.service import stop_child
from zegama_live.topics import ALERTS

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "races" / "zegama-2026"
RUNNERS = 12
SPEED = 900.0  # a 7-hour race in about 30 s
INGEST_KEY = "e2e-ingest-key"
FEED_KEY = "e2e-feed-key"
CONTROL_TOKEN = "e2e-control-token"
Json = dict[str, Any]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def get_json(url: str, key: str) -> Any:
    req = urllib.request.Request(url, headers={"X-API-Key": key})
    with urllib.request.urlopen(req, timeout=5.0) as answer:
        return orjson.loads(answer.read())


class Service:
    """One ``zegama-live`` command as a child process, stopped with SIGTERM."""

    def __init__(self, args: list[str], health: str, log: Path, env: dict[str, str]) -> None:
        self.health = health
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "zegama_live.cli", *args],
                                         cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, **env, "PYTHONUNBUFFERED": "1"})

    async def ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(healthy, self.health):
            assert self.proc.poll() is None, f"exited: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"no answer from {self.health}"
            await asyncio.sleep(0.3)

    def check(self) -> None:
        """Fail with the end of the log when the process has exited."""
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{self.log.stem} exited with {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        stop_child(self.proc)


class Spectator:
    """A websocket client holding the standings board as docs/websocket.md says."""

    def __init__(self, url: str, race: str) -> None:
        self.url, self.race = url, race
        self.channel = ClientChannel(f"standings:{race}")

    @property
    def board(self) -> Json:
        return self.channel.state or {}

    @property
    def frames(self) -> int:
        return self.channel.frames

    async def run(self) -> None:
        async with websockets.connect(self.url, max_size=None) as ws:
            await ws.send(orjson.dumps({"op": "subscribe",
                                        "channel": self.channel.name}).decode())
            async for raw in ws:
                decode_frame(raw)  # every frame fits the protocol's records
                for frame in unbatched(orjson.loads(raw)):
                    if frame.get("type") in ("snapshot", "update"):
                        self.channel.apply(frame)

    def splits(self) -> list[Json]:
        return final_splits(self.board) if self.board.get("checkpoints") else []


async def race_control(url: str, race: str, command: Json) -> Json:
    """Send one command the way the race-control page does; return the server's answer."""
    async with websockets.connect(url) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "channel": f"control:{race}",
                                    "token": CONTROL_TOKEN}).decode())
        await ws.send(orjson.dumps({"op": "command", "race": race,
                                    "command": command}).decode())
        async for raw in ws:
            decode_frame(raw)
            for frame in unbatched(orjson.loads(raw)):
                if frame.get("type") in ("ack", "error"):
                    return dict(frame)
    raise AssertionError("the websocket closed without answering the command")


async def alert_records(bootstrap: str, race: str) -> list[Json]:
    """Every alerts.v1 record of ``race`` so far, in order per partition."""
    records = await read_all(bootstrap, ALERTS)
    return [r for r in records if isinstance(r, dict) and r.get("race") == race]


@pytest.fixture
def stage(tmp_path):  # type: ignore[no-untyped-def]
    """The race folder starting now, the simulation, and the shifted fixes."""
    start_ms = int(time.time()) * 1000
    source = load_race(SOURCE)
    race_id = f"zegama-e2e-{time.time_ns()}"
    race = load_race(shifted_race(SOURCE, tmp_path, race_id, start_ms, source.timezone))
    sim = simulate(source, np.random.default_rng(7),
                   SimOptions(runners=RUNNERS, interval_s=30.0, incidents=True, weather="bad"))
    offset = start_ms - source.start_ms
    lines = [orjson.dumps({**encode_fix(shift(fix, offset)), "arrival": arrival + offset})
             for fix, arrival in sim.pings()]
    return source, race, sim, start_ms, lines


async def test_a_race_through_the_whole_platform(kafka_bootstrap, stage, tmp_path):  # type: ignore[no-untyped-def]
    source, race, sim, start_ms, lines = stage
    expected = replay(race, lines).splits
    folder = tmp_path / race.id
    ingest_port, process_port = free_port(), free_port()
    ingest = Service(["ingest", "--race-dir", str(folder), "--port", str(ingest_port),
                      "--osmand-port", str(free_port()), "--kafka-bootstrap", kafka_bootstrap,
                      "--max-future-s", str(48 * 3600), "--host", "127.0.0.1"],
                     f"http://127.0.0.1:{ingest_port}/healthz", tmp_path / "ingest.log",
                     {"ZEGAMA_INGEST_KEY": INGEST_KEY})
    worker = Service(["process", "--races", str(folder), "--kafka-bootstrap", kafka_bootstrap,
                      "--data-dir", str(tmp_path / "process"), "--app-id", f"e2e-{race.id}",
                      "--web-port", str(process_port), "--snapshot-every-s", "2",
                      "--loglevel", "info"],
                     f"http://127.0.0.1:{process_port}/healthz", tmp_path / "process.log", {})
    b = Broadcaster(BroadcastSettings(host="127.0.0.1", http_port=0, ws_port=0,
                                      bootstrap=kafka_bootstrap, races=(folder,),
                                      feed_keys=(("e2e", FEED_KEY),),
                                      control_tokens=(("e2e", CONTROL_TOKEN),),
                                      feed_rate=1000.0, feed_burst=1000))
    watchers: list[asyncio.Task[None]] = []
    try:
        await b.start()
        await ingest.ready()
        await worker.ready()
        ws_url, web = f"ws://127.0.0.1:{b.ws_port}/", f"http://127.0.0.1:{b.http_port}"
        spectator = Spectator(ws_url, race.id)
        watchers.append(asyncio.create_task(spectator.run()))
        sender = Ingest(f"http://127.0.0.1:{ingest_port}", INGEST_KEY)
        progress = Progress()
        items = schedule(sim.pings(), source, start_ms, SPEED)
        playing = asyncio.get_running_loop().run_in_executor(
            None, lambda: [None for _ in play(items, sender, progress)])
        feed = f"{web}/feed/v1/races/{race.id}"
        sos_bib = sim.incidents["sos"]

        async def sos_open() -> bool:
            ingest.check()
            worker.check()
            open_ = (await asyncio.to_thread(get_json, f"{feed}/alerts", CONTROL_TOKEN))["alerts"]
            return any(a["kind"] == "sos" and a["bib"] == sos_bib for a in open_)

        await wait_for(sos_open, 60, f"an open SOS alert of bib {sos_bib}")
        answer = await race_control(ws_url, race.id, {"op": "resolve_sos", "bib": sos_bib})
        assert answer["type"] == "ack", answer
        await playing
        sender.close()
        assert progress.sent == len(lines) and progress.rejected == 0

        async def settled() -> bool:
            worker.check()
            return spectator.splits() == expected

        await wait_for(settled, 40,
                       f"the spectator's board holding the {len(expected)} replay splits")
        assert len(expected) > RUNNERS * 5
        assert spectator.frames > 2  # live updates, not one final snapshot

        # The feed agrees with the websocket: every checkpoint's splits, every runner's card.
        board = (await asyncio.to_thread(get_json, f"{feed}/standings", FEED_KEY))["board"]
        for cp in board["checkpoints"]:
            got = await asyncio.to_thread(get_json, f"{feed}/checkpoints/{cp['id']}", FEED_KEY)
            assert got["checkpoint"]["splits"] == cp["splits"], cp["id"]
        by_bib: dict[str, list[tuple[str, int]]] = {}
        for row in final_splits(board):
            by_bib.setdefault(row["bib"], []).append((row["checkpoint"], row["t"]))
        differ: list[str] = []

        async def cards_agree() -> bool:
            # A runner's card follows its changes within --card-every-ms (2 s).
            differ.clear()
            for entrant in race.entrants[:RUNNERS]:
                card = (await asyncio.to_thread(get_json, f"{feed}/runners/{entrant.bib}",
                                                FEED_KEY))["card"]
                got_splits = [(s["checkpoint"], s["t_ms"]) for s in card["splits"]]
                if got_splits != by_bib.get(entrant.bib, []):
                    differ.append(entrant.bib)
            return not differ

        await wait_for(cards_agree, 15, "every runner's card holding the board's splits")

        # The scenario's incidents were raised on alerts.v1, and race control cleared the SOS.
        wanted = {(kind, sim.incidents[kind]) for kind in ("sos", "stopped", "off_course")}
        seen: list[Json] = []

        async def incidents_seen() -> bool:
            seen[:] = await alert_records(kafka_bootstrap, race.id)
            raised = {(r["alert"]["kind"], r["alert"]["bib"]) for r in seen
                      if r["action"] == "raised"}
            cleared = {(r["alert"]["kind"], r["alert"]["bib"]) for r in seen
                       if r["action"] == "cleared"}
            return wanted <= raised and ("sos", sos_bib) in cleared

        try:
            await wait_for(incidents_seen, 20, f"{sorted(wanted)} raised, the SOS cleared")
        except AssertionError as exc:
            actions = sorted({(r["action"], r["alert"]["kind"], r["alert"]["bib"])
                              for r in seen})
            raise AssertionError(f"{exc}; alerts.v1 has {actions}") from None
    finally:
        for task in watchers:
            task.cancel()
        await b.stop()
        ingest.stop()
        worker.stop()
