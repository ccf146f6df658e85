"""A real single-node Apache Kafka (KRaft mode) on this machine, for the demo and the tests.

The broker's jars come from Maven Central through ``deploy/local/pom.xml`` (fetched once,
then resolved from the local Maven cache, so re-runs work offline). Storage is formatted
once; ``start`` is a no-op when the broker already answers, ``stop`` is a clean SIGTERM
shutdown. Everything lives under a git-ignored folder (``var/kafka`` by default).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from zegama_live.topics import TOPICS, Topic

REPO = Path(__file__).resolve().parent.parent
POM = REPO / "deploy" / "local" / "pom.xml"
LOG4J = REPO / "deploy" / "local" / "log4j2.properties"
LIBS = REPO / "var" / "kafka" / "libs"
DEFAULT_HOME = REPO / "var" / "kafka"
DEFAULT_PORT = 9092


class KafkaError(RuntimeError):
    """The local broker could not be fetched, started or reached; the message says why."""


@dataclass(frozen=True, slots=True)
class LocalKafka:
    """Where one local broker lives and listens. Tests use their own home and ports."""

    home: Path = DEFAULT_HOME
    port: int = DEFAULT_PORT
    controller_port: int = 9093
    # 1 GiB heap: a single broker's heap needs are small; the rest of a 24 GiB machine is
    # better left to the page cache, which is what serves Kafka's reads.
    heap: str = "1g"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"


def ensure_jars() -> Path:
    """Fetch the broker's jars with Maven unless they are already there; return the folder."""
    stamp = LIBS / ".complete"
    if stamp.exists() and stamp.read_text() == POM.read_text():
        return LIBS
    if LIBS.exists():  # another Kafka version's jars must not mix into the classpath
        shutil.rmtree(LIBS)
    cmd = ["mvn", "-B", "-q", "-f", str(POM), "package"]
    try:
        subprocess.run(cmd, check=True)
    except FileNotFoundError as exc:
        raise KafkaError("Maven (mvn) is not installed; install Maven and Java 17+.") from exc
    except subprocess.CalledProcessError as exc:
        failed = f"fetching Kafka's jars failed: {' '.join(cmd)} exited {exc.returncode}"
        raise KafkaError(failed) from exc
    stamp.write_text(POM.read_text())
    return LIBS


def _server_properties(k: LocalKafka) -> str:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{k.controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{k.port},CONTROLLER://127.0.0.1:{k.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{k.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(k.data_dir),
        "num.partitions": "1",
        # Topics come from the declared list; a typo in a topic name must fail, not
        # silently create a new topic. Faust declares its own internal topics.
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # One consumer joining must not wait 3 s for others that will never come.
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.retention.check.interval.ms": "300000",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def _java(k: LocalKafka, main_class: str, *args: str) -> list[str]:
    return [
        "java", f"-Xms{k.heap}", f"-Xmx{k.heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J}", f"-Dkafka.logs.dir={k.logs_dir}",
        "-cp", f"{LIBS}/*", main_class, *args,
    ]


def _format_storage(k: LocalKafka) -> None:
    if (k.data_dir / "meta.properties").exists():
        return
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    k.data_dir.mkdir(parents=True, exist_ok=True)
    cmd = _java(k, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                "-c", str(k.config_file), "--ignore-formatted")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise KafkaError(f"formatting storage failed:\n{done.stdout}{done.stderr}")


def running_pid(k: LocalKafka) -> int | None:
    """The broker's pid when its process is alive, else None."""
    try:
        pid = int(k.pid_file.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


async def _answers(bootstrap: str, timeout_s: float) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        await asyncio.wait_for(admin.list_topics(), timeout_s)
        return True
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def answers(k: LocalKafka, timeout_s: float = 3.0) -> bool:
    """True when the broker answers a metadata request."""
    # A refused connection is the expected answer while the broker boots: not worth a log line.
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return asyncio.run(_answers(k.bootstrap, timeout_s))
    finally:
        quiet.setLevel(level)


def start(k: LocalKafka = LocalKafka(), *, wait_s: float = 90.0) -> str:
    """Start the broker unless it is running; create the declared topics; return a message."""
    if running_pid(k) is not None and answers(k):
        create_topics(k)
        return f"Kafka already running on {k.bootstrap} (pid {running_pid(k)})"
    ensure_jars()
    k.logs_dir.mkdir(parents=True, exist_ok=True)
    k.config_file.write_text(_server_properties(k))
    _format_storage(k)
    began = time.monotonic()
    with open(k.logs_dir / "console.log", "ab") as out:
        proc = subprocess.Popen(
            _java(k, "kafka.Kafka", str(k.config_file)),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the shell that started it; stop() ends it
        )
    k.pid_file.write_text(str(proc.pid))
    while time.monotonic() - began < wait_s:
        if proc.poll() is not None:
            raise KafkaError(
                f"the broker exited with {proc.returncode}; see {k.logs_dir / 'console.log'}"
            )
        if answers(k, timeout_s=2.0):
            create_topics(k)
            took = time.monotonic() - began
            return f"Kafka started on {k.bootstrap} (pid {proc.pid}) in {took:.1f} s"
        time.sleep(0.3)
    stop(k)
    raise KafkaError(f"the broker did not answer within {wait_s:.0f} s; see {k.logs_dir}")


def stop(k: LocalKafka = LocalKafka(), *, wait_s: float = 30.0) -> str:
    """Stop the broker cleanly (SIGTERM, then SIGKILL after ``wait_s``)."""
    pid = running_pid(k)
    if pid is None:
        k.pid_file.unlink(missing_ok=True)
        return "Kafka is not running"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    k.pid_file.unlink(missing_ok=True)
    return f"Kafka stopped (pid {pid})"


def status(k: LocalKafka = LocalKafka()) -> str:
    pid = running_pid(k)
    if pid is None:
        return "Kafka is not running"
    state = "answering" if answers(k) else "not answering yet"
    return f"Kafka running on {k.bootstrap} (pid {pid}), {state}"


async def create_topics_async(bootstrap: str, topics: tuple[Topic, ...] = TOPICS) -> list[str]:
    """Create the declared topics that do not exist yet; return the names created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(t.name, t.partitions, 1, topic_configs=dict(t.config))
            for t in topics
            if t.name not in existing
        ]
        if new:
            await admin.create_topics(new)
        return [t.name for t in new]
    finally:
        await admin.close()


def create_topics(k: LocalKafka) -> list[str]:
    return asyncio.run(create_topics_async(k.bootstrap))
