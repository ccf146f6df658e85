"""``zegama-live demo``: bring up the local platform and say what runs where.

Starts (or finds running) the local Kafka broker with the declared topics and the ingest
service for the demo race, each in the background with its log under ``var/``. A second
run finds everything up and says so; ``zegama-live demo --stop`` stops it all. Services
join this list as they are built.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request

from zegama_live import kafka_local
from zegama_live.kafka_local import KafkaError, LocalKafka

DEMO_DIR = kafka_local.REPO / "var" / "demo"
RACE_DIR = kafka_local.REPO / "races" / "zegama-2026"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stop", action="store_true", help="stop the demo's services and broker")
    parser.add_argument("--kafka-port", type=int, default=kafka_local.DEFAULT_PORT,
                        help="the local broker's client port (default %(default)s)")
    parser.add_argument("--ingest-port", type=int, default=8081,
                        help="ingest API port (default %(default)s)")
    parser.add_argument("--osmand-port", type=int, default=5055,
                        help="ingest OsmAnd port, as Traccar (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    k = LocalKafka(port=args.kafka_port, controller_port=args.kafka_port + 1)
    if args.stop:
        print(_stop_service("ingest"))
        print(kafka_local.stop(k))
        return 0
    try:
        print(kafka_local.start(k))
    except KafkaError as exc:
        print(f"error: {exc}")
        return 1
    keys = _demo_keys()
    ingest = _start_ingest(args, k, keys)
    if ingest is not None:
        print(ingest)
        return 1
    api = f"http://127.0.0.1:{args.ingest_port}"
    print(f"""
Running:
  Kafka broker (KRaft, single node)  {k.bootstrap}   data and logs: {k.home}
  ingest API                         {api}/v1/pings   {api}/healthz   {api}/metrics
  ingest, OsmAnd (Traccar Client)    http://<this machine>:{args.osmand_port}/
  logs                               {DEMO_DIR}

Race: {RACE_DIR.name}. Ingest key: {keys['ZEGAMA_INGEST_KEY']}
Try:  curl -s -H 'Authorization: Bearer {keys['ZEGAMA_INGEST_KEY']}' {api}/v1/pings \\
        -d '[{{"device":"ZGM-0001","ts":'$(date +%s000)',"lat":42.975,"lon":-2.29}}]'
Per-device tokens for phones: zegama-live ingest --print-device-tokens (with the keys in
{DEMO_DIR / 'secrets.env'} exported).

Stop everything: zegama-live demo --stop   (or: make demo-stop)""")
    return 0


def _demo_keys() -> dict[str, str]:
    """The demo's secrets, made once and kept, so device tokens survive a second run."""
    path = DEMO_DIR / "secrets.env"
    if not path.exists():
        DEMO_DIR.mkdir(parents=True, exist_ok=True)
        names = ("ZEGAMA_INGEST_KEY", "ZEGAMA_INGEST_DEVICE_SECRET", "ZEGAMA_INGEST_ADMIN_KEY")
        path.write_text("".join(f"{n}={secrets.token_urlsafe(18)}\n" for n in names))
        path.chmod(0o600)
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name: value for name, value in pairs}


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _start_ingest(args: argparse.Namespace, k: LocalKafka, keys: dict[str, str]) -> str | None:
    """Start ingest unless it answers; None on success, else what went wrong."""
    health = f"http://127.0.0.1:{args.ingest_port}/healthz"
    if _healthy(health):
        print(f"ingest already running on port {args.ingest_port}")
        return None
    log = DEMO_DIR / "ingest.log"
    cmd = [sys.executable, "-m", "zegama_live.cli", "ingest", "--race-dir", str(RACE_DIR),
           "--port", str(args.ingest_port), "--osmand-port", str(args.osmand_port),
           "--kafka-bootstrap", k.bootstrap]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **keys}, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    (DEMO_DIR / "ingest.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"error: ingest exited with {proc.returncode}; see {log}"
        if _healthy(health):
            print(f"ingest started on ports {args.ingest_port} and {args.osmand_port} "
                  f"(pid {proc.pid})")
            return None
        time.sleep(0.2)
    return f"error: ingest did not answer {health} within 30 s; see {log}"


def _stop_service(name: str) -> str:
    pid_file = DEMO_DIR / f"{name}.pid"
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        pid_file.unlink(missing_ok=True)
        return f"{name} is not running"
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return f"{name} stopped (pid {pid})"
