"""The processes under test: a local broker, ingest, processors and broadcaster.

Each runs as its own OS process (``zegama-live ...``) in its own session, on free
loopback ports, with its output in ``<run>/logs/<name>.log``. ``Stack`` starts them in
order, waits until each answers, and stops them in reverse order (SIGTERM, then
SIGKILL after a grace period) however the run ends, so an interrupted load test leaves
nothing behind. The processors and the broadcaster are optional stages: a stage whose
command is not in this version of ``zegama-live`` is reported as absent, not an error.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from zegama_live import kafka_local
from zegama_live.kafka_local import LocalKafka
from zegama_live.service import stop_child

BIN = Path(sys.executable).parent / "zegama-live"


class StackError(RuntimeError):
    """A process under test did not start or answer; the message names its log file."""


# Listening ports come from below Linux's ephemeral range (32768-60999): a port picked
# there can be taken as the source port of an outgoing connection (a swarm of thousands
# of sockets) between our check and the server's bind.
PORT_RANGE = (20000, 32700)


def free_port(pairs: bool = False) -> int:
    """A free loopback port (with ``pairs``, one whose successor is free too).

    Raises StackError when none is found after many tries.
    """
    import random

    for _ in range(200):
        port = random.randint(*PORT_RANGE)
        if all(_bindable(p) for p in ((port, port + 1) if pairs else (port,))):
            return port
    raise StackError(f"no free ports on 127.0.0.1 within {PORT_RANGE}")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stage_available(name: str) -> bool:
    """Whether ``zegama-live <name>`` exists in this version (its module is importable)."""
    module = {"process": "stream_processors.cli", "broadcast": "broadcast.cli"}[name]
    return importlib.util.find_spec(module) is not None


@dataclass
class Service:
    """One started process under test."""

    name: str
    pid: int
    log: Path
    health_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)


@dataclass
class Stack:
    """Start, watch and stop the processes under test of one run."""

    run_dir: Path
    race_dir: Path
    processors: bool = True
    broadcast: bool = True
    key: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    services: list[Service] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kafka: LocalKafka | None = None

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    @property
    def bootstrap(self) -> str:
        assert self.kafka is not None, "start() first"
        return self.kafka.bootstrap

    def start(self) -> None:
        """Start every stage in order; raises StackError naming the log of a failed one."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self._start_broker()
        ingest_port, osmand_port = free_port(), free_port()
        self._spawn("ingest", ["ingest", "--host", "127.0.0.1", "--port", str(ingest_port),
                               "--osmand-port", str(osmand_port),
                               "--race-dir", str(self.race_dir),
                               "--kafka-bootstrap", self.bootstrap],
                    health=f"http://127.0.0.1:{ingest_port}/healthz",
                    ports={"api": ingest_port, "osmand": osmand_port},
                    env={"ZEGAMA_INGEST_KEY": self.key})
        for stage, wanted in (("process", self.processors), ("broadcast", self.broadcast)):
            if not wanted:
                self.notes.append(f"{stage}: switched off for this run")
            elif not stage_available(stage):
                self.notes.append(f"{stage}: not in this version of zegama-live, left out")
            else:
                self._start_optional(stage)

    def _start_optional(self, stage: str, attempts: int = 2) -> None:
        """Start a stage, once more after a failure; a stage still failing is left out."""
        for attempt in range(1, attempts + 1):
            try:
                self._start_stage(stage)
                return
            except StackError as exc:  # a stage still being built must not stop the run
                if self.services[-1].name == stage:
                    self._stop_one(self.services.pop())
                if attempt == attempts:
                    self.notes.append(f"{stage}: left out, it did not start: {exc}")
                time.sleep(3)

    def _start_stage(self, stage: str) -> None:
        """Start the processors or the broadcaster with the flags its ``--help`` offers."""
        flags = _flags(stage)

        def pick(*names: str) -> str:
            found = next((n for n in names if n in flags), None)
            if found is None:
                raise StackError(f"zegama-live {stage} has none of the flags {names}")
            return found

        common = [pick("--races", "--race", "--race-dir"), str(self.race_dir),
                  pick("--kafka-bootstrap", "--bootstrap"), self.bootstrap]
        if stage == "process":
            port = free_port()
            self._spawn("process", ["process", *common,
                                    pick("--data-dir"), str(self.run_dir / "processor-data"),
                                    pick("--web-port"), str(port)],
                        health=f"http://127.0.0.1:{port}/healthz", ports={"web": port})
            return
        http, ws = free_port(), free_port()
        self._spawn("broadcast", ["broadcast", *common, pick("--http-port"), str(http),
                                  pick("--ws-port"), str(ws)],
                    health=f"http://127.0.0.1:{http}/healthz", ports={"http": http, "ws": ws})

    def _start_broker(self, attempts: int = 3) -> None:
        """Start the broker on free ports; again on other ports if one was taken meanwhile."""
        log = self.logs / "broker-start.log"
        for _ in range(attempts):
            port = free_port(pairs=True)
            self.kafka = LocalKafka(home=self.run_dir / "kafka", port=port,
                                    controller_port=port + 1)
            with open(log, "ab") as out:
                done = subprocess.run(
                    [str(BIN), "kafka", "start", "--home", str(self.kafka.home),
                     "--port", str(port)],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    timeout=180, check=False)
            pid = kafka_local.running_pid(self.kafka)
            if done.returncode == 0 and pid is not None:
                self.services.append(Service("broker", pid, self.kafka.logs_dir / "console.log",
                                             ports={"kafka": port}))
                return
        raise StackError(f"the broker did not start; see {log} and {self.kafka.logs_dir}")

    def _spawn(self, name: str, args: list[str], *, health: str, ports: dict[str, int],
               env: dict[str, str] | None = None, wait_s: float = 90.0) -> None:
        log = self.logs / f"{name}.log"
        out = open(log, "ab")  # noqa: SIM115 -- stays open for the child's lifetime
        proc = subprocess.Popen([str(BIN), *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                                start_new_session=True)  # Ctrl-C reaches us, we stop them
        out.close()
        service = Service(name, proc.pid, log, health, proc, ports)
        self.services.append(service)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(f"{name} exited with {proc.returncode} at start; see {log}")
            if _answers(health):
                return
            time.sleep(0.3)
        raise StackError(f"{name} did not answer {health} within {wait_s:.0f} s; see {log}")

    def wait_pipeline(self, timeout_s: float = 120.0) -> float | None:
        """Send a fix every 2 s until the processors publish a runner update.

        Returns the seconds it took, or None when none came within ``timeout_s`` (also
        noted). Without processors there is nothing to wait for: returns 0.
        """
        if self.service("process") is None:
            return 0.0
        import asyncio

        took = asyncio.run(self._first_update(timeout_s))
        if took is None:
            self.notes.append(f"process: no runner-updates.v1 record within {timeout_s:.0f} s "
                              "of the first fixes (see its log)")
        return took

    async def _first_update(self, timeout_s: float) -> float | None:
        import aiohttp
        from aiokafka import AIOKafkaConsumer

        from race_engine.racefolder import load_entrants

        device = next(e.device for e in load_entrants(self.race_dir / "entrants.csv")
                      if e.device)
        url = f"http://127.0.0.1:{self.service('ingest').ports['api']}/v1/pings"  # type: ignore[union-attr]
        consumer = AIOKafkaConsumer("runner-updates.v1", bootstrap_servers=self.bootstrap,
                                    auto_offset_reset="latest", group_id=None)
        await consumer.start()
        began = time.monotonic()
        try:
            async with aiohttp.ClientSession() as session:
                while time.monotonic() - began < timeout_s:
                    fix = {"device": device, "ts": int(time.time() * 1000), "lat": 0.0,
                           "lon": 0.0}
                    fix.update(self._start_point())
                    await session.post(url, json=[fix],
                                       headers={"Authorization": f"Bearer {self.key}"})
                    got = await consumer.getmany(timeout_ms=2000)
                    if any(got.values()):
                        return time.monotonic() - began
        finally:
            await consumer.stop()
        return None

    def _start_point(self) -> dict[str, float]:
        from race_engine.racefolder import load_course

        lat, lon = load_course(self.race_dir / "course.gpx").position_at(0.0)
        return {"lat": lat, "lon": lon}

    def check_alive(self) -> list[str]:
        """Names of the started processes that have died since."""
        dead = []
        for s in self.services:
            if s.proc is not None and s.proc.poll() is not None:
                dead.append(f"{s.name} (exit {s.proc.returncode}, see {s.log})")
        return dead

    def stop(self, grace_s: float = 20.0) -> None:
        """Stop every started process, last started first; never raises."""
        for s in reversed(self.services):
            if s.name == "broker" and self.kafka is not None:
                try:
                    kafka_local.stop(self.kafka)
                except Exception as exc:  # keep stopping the others
                    self.notes.append(f"broker stop: {exc}")
                continue
            self._stop_one(s, grace_s)

    def _stop_one(self, s: Service, grace_s: float = 20.0) -> None:
        if s.proc is not None and stop_child(s.proc, grace_s):
            self.notes.append(f"{s.name} did not stop within {grace_s:.0f} s: killed")


def _flags(stage: str) -> set[str]:
    """The long flags ``zegama-live <stage> --help`` lists."""
    import re

    done = subprocess.run([str(BIN), stage, "--help"], capture_output=True, text=True,
                          timeout=60, check=False)
    return set(re.findall(r"--[a-z][a-z0-9-]*", done.stdout))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except Exception:
        return False
