"""``zegama-live demo``: the whole platform on this machine, playing a simulated Zegama.

Starts the local Kafka broker (unless it runs), then the stream processors, the
broadcaster and ingest, each in the background with its log and pid under ``var/demo/``,
and waits for their health checks. It prints the pages' addresses, a race-control token
and a feed key (made once, kept in ``var/demo/secrets.env``), then plays a simulated
field (``--runners``, bad weather, incidents) into ingest over HTTP, ``--speed`` times
faster than real time, with a weather alert for the ridge partway through, issued as
race control does it: a command on the broadcaster's websocket with the printed token.

The player sends fixes as the devices' trackers would: while ingest answers 503 (Kafka
away) or does not answer, each device keeps its fixes and sends them again when it can,
the status line says what it is waiting for, and the race plays on; so does a command
that Kafka or the broadcaster did not take, sent again later. Only a service that
stopped ends the demo early (status 1).

Each run is a new race: the race folder is copied under ``var/demo/races/`` with a new
id and its start moved to now, and the processors get a new consumer group and data
folder, so a second run never mixes with the first one's records (other races' records
on the topics are skipped). Services stop at the end or on Ctrl-C unless ``--keep-running``;
``zegama-live demo --stop`` stops them, and the broker when the demo started it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from race_engine.racefolder import RaceFolderError, load_race
from race_engine.simulate import SimOptions, simulate
from zegama_live import demo_player, kafka_local
from zegama_live.demo_player import Incident, Incidents, Ingest, PlayError, Progress
from zegama_live.kafka_local import KafkaError, LocalKafka

DEMO_DIR = kafka_local.REPO / "var" / "demo"
RACE_DIR = kafka_local.REPO / "races" / "zegama-2026"
SERVICES = ("ingest", "broadcast", "process")  # stopped in this order
BROKER_MARK = DEMO_DIR / "kafka.started-by-demo"
APP_ID = "zegama-demo"
WEATHER_AT_MS = 90 * 60_000  # race time of the ridge's weather alert: before the leaders get there
PROGRESS_EVERY_S = 5.0
INGEST_TIMEOUT_S = 20.0  # longer than ingest's wait for Kafka's acknowledgement (10 s)
INCIDENT_RETRY_S = 20.0  # a command Kafka or the broadcaster did not take: sent again after


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stop", action="store_true", help="stop the demo's services and broker")
    parser.add_argument("--runners", type=int, default=500,
                        help="runners to simulate (default %(default)s)")
    parser.add_argument("--speed", type=float, default=20.0,
                        help="how many times faster than real time to play (default %(default)s)")
    parser.add_argument("--seed", type=int, default=2026, help="simulation seed")
    parser.add_argument("--keep-running", action="store_true",
                        help="leave the services up when the race ends or on Ctrl-C")
    parser.add_argument("--kafka-port", type=int, default=kafka_local.DEFAULT_PORT,
                        help="the local broker's client port (default %(default)s)")
    parser.add_argument("--ingest-port", type=int, default=8081,
                        help="ingest API port (default %(default)s)")
    parser.add_argument("--osmand-port", type=int, default=5055,
                        help="ingest OsmAnd port, as Traccar (default %(default)s)")
    parser.add_argument("--process-port", type=int, default=6066,
                        help="processors' /healthz and /metrics port (default %(default)s)")
    parser.add_argument("--http-port", type=int, default=8080,
                        help="broadcaster pages and feed port (default %(default)s)")
    parser.add_argument("--ws-port", type=int, default=8765,
                        help="broadcaster websocket port (default %(default)s)")


@dataclass(frozen=True)
class Service:
    """One background process of the demo."""

    name: str
    cmd: list[str]
    health: str
    env: dict[str, str]


def run(args: argparse.Namespace) -> int:
    k = LocalKafka(port=args.kafka_port, controller_port=args.kafka_port + 1)
    if args.stop:
        stop_all(k, broker=True)
        return 0
    problem = _check(args)
    if problem:
        print(f"zegama-live demo: {problem}", file=sys.stderr)
        return 2
    began = time.monotonic()
    DEMO_DIR.mkdir(parents=True, exist_ok=True)  # a fresh clone has no var/ yet
    stop_all(k, broker=False, quiet=True)  # a new run is a new race: services restart
    try:
        was_running = kafka_local.running_pid(k) is not None
        print(kafka_local.start(k))
        if not was_running:
            BROKER_MARK.write_text(str(kafka_local.running_pid(k)))
    except KafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    keys = _demo_keys()
    source = load_race(RACE_DIR)
    sim = simulate(source, np.random.default_rng(args.seed),
                   SimOptions(runners=args.runners, incidents=True, weather="bad"))
    start_ms = int(time.time()) * 1000
    race_id = "zegama-" + datetime.fromtimestamp(start_ms / 1000, UTC).strftime("%Y%m%d-%H%M%S")
    folder = demo_player.shifted_race(RACE_DIR, DEMO_DIR / "races", race_id, start_ms,
                                        source.timezone)
    try:
        race = load_race(folder)
    except RaceFolderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    shutil.rmtree(DEMO_DIR / "process", ignore_errors=True)  # earlier runs' tables
    for service in _services(args, k, folder, keys):
        error = _start(service)
        if error:
            print(error, file=sys.stderr)
            stop_all(k, broker=False)
            return 1
    _announce(args, race.id, keys, time.monotonic() - began)
    _show_player_log()
    signal.signal(signal.SIGTERM, _interrupt)
    code = 1
    try:
        code = _play(args, source, sim, race.id, start_ms, keys)
    except KeyboardInterrupt:
        print("\ninterrupted")
        code = 130
    finally:
        if args.keep_running:
            print("services keep running; stop them with: zegama-live demo --stop")
        else:
            stop_all(k, broker=True)
    return code


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _check(args: argparse.Namespace) -> str | None:
    if not 1 <= args.runners <= 500:
        return f"--runners must be within 1..500 (entrants.csv has 500), got {args.runners}"
    if not 0.1 <= args.speed <= 1000:
        return f"--speed must be within 0.1..1000, got {args.speed}"
    return None


def _services(args: argparse.Namespace, k: LocalKafka, folder: Path,
              keys: dict[str, str]) -> list[Service]:
    cli = [sys.executable, "-m", "zegama_live.cli"]
    local = "http://127.0.0.1"
    # Fixes run ahead of the wall clock by the speed-up: ingest must take the whole race.
    ahead_s = str(48 * 3600)
    return [
        Service("process", [*cli, "process", "--races", str(folder), "--kafka-bootstrap",
                            k.bootstrap, "--data-dir", str(DEMO_DIR / "process" / folder.name),
                            "--app-id", f"{APP_ID}-{folder.name}",
                            "--web-port", str(args.process_port),
                            "--loglevel", "info"],
                f"{local}:{args.process_port}/healthz", {}),
        Service("broadcast", [*cli, "broadcast", "--race", str(folder), "--bootstrap",
                              k.bootstrap, "--http-port", str(args.http_port),
                              "--ws-port", str(args.ws_port)],
                f"{local}:{args.http_port}/healthz",
                {"ZEGAMA_CONTROL_TOKENS": f"demo:{keys['ZEGAMA_CONTROL_TOKEN']}",
                 "ZEGAMA_FEED_KEYS": f"demo:{keys['ZEGAMA_FEED_KEY']}"}),
        Service("ingest", [*cli, "ingest", "--race-dir", str(folder), "--port",
                           str(args.ingest_port), "--osmand-port", str(args.osmand_port),
                           "--kafka-bootstrap", k.bootstrap, "--max-future-s", ahead_s],
                f"{local}:{args.ingest_port}/healthz", keys),
    ]


def _announce(args: argparse.Namespace, race: str, keys: dict[str, str], took_s: float) -> None:
    web = f"http://127.0.0.1:{args.http_port}"
    print(f"""
All services up in {took_s:.0f} s. Race {race}: {args.runners} runners, bad weather, incidents,
played {args.speed:g}x faster than real time.

  spectator page     {web}/
  race-control page  {web}/control      token: {keys['ZEGAMA_CONTROL_TOKEN']}
  JSON feed          {web}/feed/v1/races/{race}/standings   X-API-Key: {keys['ZEGAMA_FEED_KEY']}
  ingest             http://127.0.0.1:{args.ingest_port}/v1/pings   key: {keys['ZEGAMA_INGEST_KEY']}
  logs               {DEMO_DIR}

Ctrl-C stops the demo; zegama-live demo --stop stops services left running.
""", flush=True)


def _show_player_log() -> None:
    """Print the player's news (waiting for Kafka, back, malformed requests) with the
    progress lines: errors on stderr prefixed ``error:``, the rest on stdout."""
    out, err = logging.StreamHandler(sys.stdout), logging.StreamHandler(sys.stderr)
    out.addFilter(lambda record: record.levelno < logging.ERROR)
    out.setFormatter(logging.Formatter("%(message)s"))
    err.setLevel(logging.ERROR)
    err.setFormatter(logging.Formatter("error: %(message)s"))
    player = logging.getLogger(demo_player.__name__)
    player.setLevel(logging.INFO)
    player.propagate = False
    for handler in (out, err):
        player.addHandler(handler)


def _play(args: argparse.Namespace, source: Any, sim: Any, race: str, start_ms: int,
          keys: dict[str, str]) -> int:
    """Play the simulation; print progress; 0 when the whole race was played."""
    ingest = Ingest(f"http://127.0.0.1:{args.ingest_port}", keys["ZEGAMA_INGEST_KEY"],
                    timeout_s=INGEST_TIMEOUT_S)
    progress = Progress()
    items = demo_player.schedule(sim.pings(), source, start_ms, args.speed)
    incidents = Incidents(demo_player.plan_incidents(source, WEATHER_AT_MS))
    try:
        return follow(demo_player.play(items, ingest, progress), progress, incidents,
                      issue=lambda incident: _issue(args, race, keys, incident),
                      status=lambda p: _progress_line(args, race, keys, p))
    finally:
        ingest.close()


def follow(playing: Iterable[Progress], progress: Progress, incidents: Incidents, *,
           issue: Callable[[Incident], bool], status: Callable[[Progress], str],
           every_s: float = PROGRESS_EVERY_S, retry_s: float = INCIDENT_RETRY_S,
           settle_s: float = 3.0, services: Iterable[str] = SERVICES) -> int:
    """Supervise the player to the race's end: issue each incident when the race clock
    reaches it (again every ``retry_s`` while ``issue`` says it may work later), print
    the status line every ``every_s`` and check that the services still run.

    Ingest answering 503 or not answering is no failure: the player keeps the fixes
    and ``status`` says what it waits for. Returns 0 when the race was played, 1 when
    a service stopped (its log named).
    """
    shown = time.monotonic()
    again: list[tuple[float, Incident]] = []  # (when to try again, incident)
    for p in playing:
        now = time.monotonic()
        todo = [i for at, i in again if at <= now] + incidents.due(p.race_ms)
        again = [(at, i) for at, i in again if at > now]
        for incident in todo:
            if not issue(incident):
                print(f"race control: {incident.says} will be sent again in {retry_s:g} s",
                      flush=True)
                again.append((time.monotonic() + retry_s, incident))
        if time.monotonic() - shown >= every_s:
            shown = time.monotonic()
            print(status(p), flush=True)
            dead = [name for name in services if not _running(name)]
            if dead:
                print(f"error: {', '.join(dead)} stopped; see "
                      f"{', '.join(str(DEMO_DIR / f'{n}.log') for n in dead)}",
                      file=sys.stderr)
                return 1
    for _, incident in again:  # the race is over: one last try
        if not issue(incident):
            print(f"race control: {incident.says} was never issued", file=sys.stderr)
    time.sleep(settle_s)  # the last fixes through the processors before the final line
    print(status(progress))
    losses = [f"{n:,} {what}" for n, what in (
        (progress.rejected, "refused by ingest"),
        (progress.dropped, "dropped from full device buffers"),
        (progress.discarded, "dropped as malformed requests")) if n]
    print("race over: every fix played" + (f" ({', '.join(losses)})" if losses else ""))
    return 0


def _issue(args: argparse.Namespace, race: str, keys: dict[str, str],
           incident: Incident) -> bool:
    """Issue a planned race-control command through the broadcaster, as the control page
    would. True when done with it (issued, or refused: reported, the race plays on);
    False when it could not be delivered (Kafka or the broadcaster away) and may work
    later."""
    try:
        record = demo_player.issue_command(f"ws://127.0.0.1:{args.ws_port}/",
                                           keys["ZEGAMA_CONTROL_TOKEN"], race, incident.command)
    except PlayError as exc:
        if exc.retry:
            print(f"race control: {incident.says} not issued yet: {exc}", flush=True)
            return False
        print(f"error: race control's {incident.says} was not issued: {exc}",
              file=sys.stderr, flush=True)
        return True
    print(f"race control: {incident.says} (command {record['id']} by {record['by']})",
          flush=True)
    return True


def _progress_line(args: argparse.Namespace, race: str, keys: dict[str, str],
                   p: Progress) -> str:
    web = f"http://127.0.0.1:{args.http_port}/feed/v1/races/{race}"
    return demo_player.progress_line(p, _get_json(f"{web}/standings", keys["ZEGAMA_FEED_KEY"]),
                                     _get_json(f"{web}/alerts", keys["ZEGAMA_CONTROL_TOKEN"]))


def _get_json(url: str, key: str) -> Any:
    try:
        req = urllib.request.Request(url, headers={"X-API-Key": key})
        with urllib.request.urlopen(req, timeout=2.0) as answer:
            return orjson.loads(answer.read())
    except (OSError, ValueError):
        return None


def stop_all(k: LocalKafka, *, broker: bool, quiet: bool = False) -> None:
    """Stop the demo's services, and the broker when ``broker`` and the demo started it."""
    for name in SERVICES:
        message = _stop_service(name)
        if not quiet or "stopped" in message:
            print(message)
    if broker and BROKER_MARK.exists():
        print(kafka_local.stop(k))
        BROKER_MARK.unlink(missing_ok=True)
    elif broker and not quiet:
        print(f"Kafka on {k.bootstrap} left running: the demo did not start it")


def _demo_keys() -> dict[str, str]:
    """The demo's secrets, made once and kept, so device tokens survive a second run."""
    path = DEMO_DIR / "secrets.env"
    if not path.exists():
        DEMO_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        path.chmod(0o600)
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    keys = {name: value for name, value in pairs}
    missing = [n for n in KEY_NAMES if n not in keys]
    if missing:  # a file from an older demo: add the new keys, keep the old ones
        with open(path, "a") as out:
            for name in missing:
                keys[name] = secrets.token_urlsafe(18)
                out.write(f"{name}={keys[name]}\n")
    return keys


KEY_NAMES = ("ZEGAMA_INGEST_KEY", "ZEGAMA_INGEST_DEVICE_SECRET", "ZEGAMA_INGEST_ADMIN_KEY",
             "ZEGAMA_CONTROL_TOKEN", "ZEGAMA_FEED_KEY")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _start(service: Service, wait_s: float = 120.0) -> str | None:
    """Start ``service`` in the background and wait for its health check.

    Returns None when it answers, else what went wrong (and where its log is).
    """
    if _healthy(service.health):
        return (f"error: something already answers {service.health}; stop it (zegama-live "
                "demo --stop) or pick other ports")
    log = DEMO_DIR / f"{service.name}.log"
    began = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.Popen(service.cmd, env={**os.environ, **service.env,
                                                  "PYTHONUNBUFFERED": "1"},
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=kafka_local.REPO, start_new_session=True)
    (DEMO_DIR / f"{service.name}.pid").write_text(str(proc.pid))
    while time.monotonic() - began < wait_s:
        if proc.poll() is not None:
            return f"error: {service.name} exited with {proc.returncode}; see {log}"
        if _healthy(service.health):
            print(f"{service.name} started in {time.monotonic() - began:.1f} s (pid {proc.pid})",
                  flush=True)
            return None
        time.sleep(0.3)
    return f"error: {service.name} did not answer {service.health} within {wait_s:.0f} s; see {log}"


def _stop_service(name: str) -> str:
    pid_file = DEMO_DIR / f"{name}.pid"
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        pid_file.unlink(missing_ok=True)
        return f"{name} is not running"
    deadline = time.monotonic() + 30
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline += 10
        time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return f"{name} stopped (pid {pid})"


def _running(name: str) -> bool:
    try:
        return _alive(int((DEMO_DIR / f"{name}.pid").read_text()))
    except (FileNotFoundError, ValueError):
        return False


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):  # reap it when this process started it
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
