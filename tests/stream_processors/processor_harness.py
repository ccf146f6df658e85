"""Drive real processor workers against the real broker: simulated pings in, the
published records out."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from race_engine.model import Race
from race_engine.simulate import SimOptions, simulate
from zegama_live.records import PingRecord, encode_ping
from zegama_live.service import stop_child
from zegama_live.topics import BY_NAME, PINGS, STANDINGS, runner_key

ROOT = Path(__file__).resolve().parents[2]


def sim_pings(race: Race, runners: int, seed: int = 7,
              incidents: bool = False) -> list[tuple[bytes, bytes, bytes]]:
    """``(key, value, device JSON line)`` of a simulated field's fixes, in arrival order."""
    from race_engine.fixes import encode_fix

    sim = simulate(race, np.random.default_rng(seed),
                   SimOptions(runners=runners, incidents=incidents, interval_s=30.0))
    bibs = {e.device: e.bib for e in race.entrants}
    out = []
    for fix, arrival in sim.pings():
        bib = bibs[fix.device]
        rec = PingRecord(race=race.id, bib=bib, fix=fix, received_ms=arrival, source="batch")
        line = orjson.dumps({**encode_fix(fix), "arrival": arrival})
        out.append((runner_key(race.id, bib), encode_ping(rec), line))
    return out


async def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, key=key, value=value)
        await producer.flush()
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` from the beginning up to its current end, decoded."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(BY_NAME[topic].partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[dict[str, Any]] = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            batch = await consumer.getmany(timeout_ms=1000)
            for tp in tps:  # partition by partition, each in offset order
                out += [_json(msg.value) for msg in batch.get(tp, [])]
        return out
    finally:
        await consumer.stop()


def _json(value: bytes | None) -> Any:
    """A record's JSON; None for what other tests write malformed on purpose."""
    try:
        return orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        return None


def latest_board(records: list[dict[str, Any]], race: str) -> dict[str, Any] | None:
    """The board of ``race`` after applying every standings record in order
    (docs/streams.md): the latest snapshot, then the updates that follow it."""
    board: dict[str, Any] | None = None
    for rec in records:
        if not isinstance(rec, dict) or rec.get("race") != race:
            continue
        if rec["type"] == "snapshot":
            board = rec["board"]
        elif board is not None:
            rows = {row["bib"]: row for row in board["runners"]}
            rows.update({row["bib"]: row for row in rec["rows"]})
            board["runners"] = [rows[b] for b in rec["order"]]
            cps = {cp["id"]: cp for cp in board["checkpoints"]}
            cps.update({cp["id"]: cp for cp in rec["checkpoints"]})
            board["checkpoints"] = [cps[cp["id"]] for cp in board["checkpoints"]]
            if "finishers" in rec:
                board["finishers"] = rec["finishers"]
            board["leader"] = rec["leader"]
    return board


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Worker:
    """One ``zegama-live process`` worker as a child process."""

    def __init__(self, bootstrap: str, races: str, data_dir: Path, app_id: str,
                 log: Path) -> None:
        self.port = free_port()
        self.cmd = [sys.executable, "-m", "zegama_live.cli", "process", "--races", races,
                    "--kafka-bootstrap", bootstrap, "--data-dir", str(data_dir),
                    "--app-id", app_id, "--web-port", str(self.port), "--loglevel", "info",
                    "--snapshot-every-s", "2"]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    def kill(self) -> None:
        """``kill -9``: no flush, no commit, no goodbye to the group."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def events(self) -> str:
        """The worker log's group and recovery events (joins, revocations, divergence,
        warnings): what a failed comparison needs next to it to be understood."""
        marks = ("Joined group", "Revoking", "rebalanc", "WARNING", "ERROR", "took over")
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(line[:200] for line in lines if any(k in line for k in marks))

    def stop(self) -> None:
        if self.proc is not None:
            stop_child(self.proc)


async def wait_for(predicate: Any, timeout_s: float, what: str, every_s: float = 1.0) -> Any:
    """Poll the async ``predicate`` every ``every_s`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(every_s)


__all__ = ["PINGS", "STANDINGS", "Worker", "latest_board", "produce", "read_all",
           "sim_pings", "wait_for"]
