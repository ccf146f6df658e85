"""A real Apache Kafka (KRaft mode) on this machine, for the demo and the tests: one
node, or a cluster of several (``LocalCluster``: three nodes from the same jars, each
broker and controller, on their own ports and folders), to lose a broker mid-race.

The broker's jars come from Maven Central through ``deploy/local/pom.xml`` (fetched once,
then resolved from the local Maven cache, so re-runs work offline). Storage is formatted
once; ``start`` is a no-op when the broker already answers, ``stop`` is a clean SIGTERM
shutdown that returns as soon as the process is gone (a broker left a zombie by the
process that started it counts as gone). Everything lives under a git-ignored folder
(``var/kafka`` by default).

Replication follows the size: one node keeps one copy of everything; three or more keep
three, and a write needs two of them (``min.insync.replicas`` 2), so a cluster loses a
broker without losing an acknowledged record or refusing writes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from zegama_live.topics import CLUSTER, LOCAL, REPLICATION, TOPICS, Topic

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
    node_id: int = 1
    voters: str = ""  # a cluster's controller quorum "1@host:port,..."; empty: this node alone

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


def replication(brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for a cluster of ``brokers``: 1/1 on one
    node, 3/2 from three on (a write survives one broker lost, and one more stays safe)."""
    return REPLICATION[CLUSTER if brokers >= 3 else LOCAL]


def _server_properties(k: LocalKafka) -> str:
    voters = k.voters or f"{k.node_id}@127.0.0.1:{k.controller_port}"
    rf, isr = replication(len(voters.split(",")))
    props = {
        "process.roles": "broker,controller",
        "node.id": str(k.node_id),
        "controller.quorum.voters": voters,
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
        "default.replication.factor": str(rf),
        "min.insync.replicas": str(isr),
        "offsets.topic.replication.factor": str(rf),
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": str(isr),
        "share.coordinator.state.topic.replication.factor": str(rf),
        "share.coordinator.state.topic.min.isr": str(isr),
        # A broker killed without a goodbye is fenced (its partitions led elsewhere) once
        # it missed its heartbeats this long: 9 s by default, most of a 15 s stall budget.
        "broker.session.timeout.ms": "4000",
        "broker.heartbeat.interval.ms": "1000",
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


def new_cluster_id() -> str:
    """A random cluster id as Kafka writes them (base64 of a UUID), never starting with
    "-": the storage tool would read one such as "-7c2..." as an option and refuse it
    (1 start in 64 failed so)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _format_storage(k: LocalKafka, cluster_id: str | None = None) -> None:
    if (k.data_dir / "meta.properties").exists():
        return
    cluster_id = cluster_id or new_cluster_id()
    k.data_dir.mkdir(parents=True, exist_ok=True)
    cmd = _java(k, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                "-c", str(k.config_file), "--ignore-formatted")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise KafkaError(f"formatting storage failed:\n{done.stdout}{done.stderr}")


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (exited, waiting for its parent to reap
    it: the demo starts the broker as its child and a ``kafka stop`` from another shell
    must not wait for a process that is already gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True  # no /proc (not Linux): the signal check is all there is
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def running_pid(k: LocalKafka) -> int | None:
    """The broker's pid when its process is alive, else None."""
    try:
        pid = int(k.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


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


def answers(k: LocalKafka | LocalCluster, timeout_s: float = 3.0) -> bool:
    """True when the broker (a cluster: any of its brokers) answers a metadata request."""
    # A refused connection is the expected answer while the broker boots: not worth a log line.
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return asyncio.run(_answers(k.bootstrap, timeout_s))
    finally:
        quiet.setLevel(level)


def _prepare(k: LocalKafka, cluster_id: str | None = None) -> None:
    k.logs_dir.mkdir(parents=True, exist_ok=True)
    k.config_file.write_text(_server_properties(k))
    _format_storage(k, cluster_id)


def _spawn(k: LocalKafka, cluster_id: str | None = None) -> subprocess.Popen[bytes]:
    _prepare(k, cluster_id)
    with open(k.logs_dir / "console.log", "ab") as out:
        proc = subprocess.Popen(
            _java(k, "kafka.Kafka", str(k.config_file)),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the shell that started it; stop() ends it
        )
    k.pid_file.write_text(str(proc.pid))
    return proc


def start(k: LocalKafka = LocalKafka(), *, wait_s: float = 90.0) -> str:
    """Start the broker unless it is running; create the declared topics; return a message."""
    if running_pid(k) is not None and answers(k):
        create_topics(k)
        return f"Kafka already running on {k.bootstrap} (pid {running_pid(k)})"
    ensure_jars()
    began = time.monotonic()
    proc = _spawn(k)
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
    """Stop the broker cleanly (SIGTERM, then SIGKILL after ``wait_s``); returns as soon
    as the process is gone."""
    pids = _stop_all([k], wait_s)
    return f"Kafka stopped (pid {pids[0]})" if pids else "Kafka is not running"


def _stop_all(nodes: list[LocalKafka], wait_s: float, sig: int = signal.SIGTERM) -> list[int]:
    """Signal every running node at once, wait until all are gone (SIGKILL the ones left
    after ``wait_s``); return the pids stopped."""
    running = {}
    for k in nodes:
        pid = running_pid(k)
        if pid is None:
            k.pid_file.unlink(missing_ok=True)
        else:
            os.kill(pid, sig)
            running[pid] = k
    deadline = time.monotonic() + wait_s
    left = dict(running)
    while left:
        for pid in list(left):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # our own child: reap it
            if not _alive(pid):
                left.pop(pid).pid_file.unlink(missing_ok=True)
        if not left:
            break
        if time.monotonic() > deadline:
            for pid, k in left.items():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                k.pid_file.unlink(missing_ok=True)
            break
        time.sleep(0.05)
    return list(running)


def status(k: LocalKafka = LocalKafka()) -> str:
    pid = running_pid(k)
    if pid is None:
        return "Kafka is not running"
    state = "answering" if answers(k) else "not answering yet"
    return f"Kafka running on {k.bootstrap} (pid {pid}), {state}"


async def create_topics_async(bootstrap: str, topics: tuple[Topic, ...] = TOPICS) -> list[str]:
    """Create the declared topics that do not exist yet, replicated as the cluster's
    size says (``replication``); return the names created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        rf, isr = replication(len(admin._client.cluster.brokers()))
        new = [
            NewTopic(t.name, t.partitions, rf,
                     topic_configs={**t.config, "min.insync.replicas": str(isr)})
            for t in topics
            if t.name not in existing
        ]
        if new:
            await admin.create_topics(new)
        return [t.name for t in new]
    finally:
        await admin.close()


async def replication_of(bootstrap: str) -> tuple[int, int]:
    """``replication`` for the cluster at ``bootstrap`` (as many brokers as it reports)."""
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        return replication(len(client.cluster.brokers()))
    finally:
        await client.close()


def create_topics(k: LocalKafka | LocalCluster) -> list[str]:
    return asyncio.run(create_topics_async(k.bootstrap))


# ------------------------------------------------------------------------ a cluster

@dataclass(frozen=True, slots=True)
class LocalCluster:
    """``brokers`` KRaft nodes under ``home`` (``node-N``), node N's client port at
    ``port + 2(N-1)`` and its controller's one above; every node is broker and
    controller, so losing one leaves a quorum. ``kafka start --brokers 3`` writes its
    layout to ``cluster.json`` so ``stop`` and ``status`` find it."""

    home: Path = DEFAULT_HOME
    port: int = DEFAULT_PORT
    brokers: int = 3
    heap: str = "768m"

    @property
    def nodes(self) -> tuple[LocalKafka, ...]:
        voters = ",".join(f"{i + 1}@127.0.0.1:{self.port + 2 * i + 1}"
                          for i in range(self.brokers))
        return tuple(LocalKafka(home=self.home / f"node-{i + 1}", port=self.port + 2 * i,
                                controller_port=self.port + 2 * i + 1, heap=self.heap,
                                node_id=i + 1, voters=voters)
                     for i in range(self.brokers))

    @property
    def bootstrap(self) -> str:
        return ",".join(k.bootstrap for k in self.nodes)

    @property
    def layout_file(self) -> Path:
        return self.home / "cluster.json"

    def node(self, n: int) -> LocalKafka:
        """Node ``n`` (1-based)."""
        return self.nodes[n - 1]


def cluster_in(home: Path) -> LocalCluster | None:
    """The cluster ``kafka start --brokers N`` made in ``home``, if any."""
    try:
        layout = json.loads((home / "cluster.json").read_text())
        return LocalCluster(home=home, port=int(layout["port"]), brokers=int(layout["brokers"]))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def start_cluster(c: LocalCluster, *, wait_s: float = 120.0) -> str:
    """Start the nodes not running, wait until each answers, create the declared topics."""
    if c.brokers < 1:
        raise KafkaError("a cluster needs at least one broker")
    ensure_jars()
    c.home.mkdir(parents=True, exist_ok=True)
    c.layout_file.write_text(json.dumps({"brokers": c.brokers, "port": c.port}))
    id_file = c.home / "cluster.id"
    if not id_file.exists():
        id_file.write_text(new_cluster_id())
    cluster_id = id_file.read_text().strip()
    began = time.monotonic()
    starting = [k for k in c.nodes if running_pid(k) is None]
    # Formatting is a JVM start per node: side by side, not one after another (a quorum
    # forms only once a majority of the nodes runs).
    with ThreadPoolExecutor(len(starting) or 1) as pool:
        list(pool.map(lambda k: _prepare(k, cluster_id), starting))
    procs = {k.node_id: _spawn(k, cluster_id) for k in starting}
    waiting = list(c.nodes)
    while waiting and time.monotonic() - began < wait_s:
        for k in list(waiting):
            proc = procs.get(k.node_id)
            if proc is not None and proc.poll() is not None:
                stop_cluster(c)
                raise KafkaError(f"broker {k.node_id} exited with {proc.returncode}; see "
                                 f"{k.logs_dir / 'console.log'}")
            if answers(k, timeout_s=2.0):
                waiting.remove(k)
        time.sleep(0.3)
    if waiting:
        stop_cluster(c)
        raise KafkaError(f"brokers {[k.node_id for k in waiting]} did not answer within "
                         f"{wait_s:.0f} s; see {c.home}/node-*/logs")
    create_topics(c)
    took = time.monotonic() - began
    return f"Kafka cluster of {c.brokers} started on {c.bootstrap} in {took:.1f} s"


def start_node(c: LocalCluster, n: int, *, wait_s: float = 90.0) -> float:
    """Start node ``n`` again (after ``kill_node``); return the seconds until it answered."""
    k = c.node(n)
    began = time.monotonic()
    if running_pid(k) is None:
        proc = _spawn(k, (c.home / "cluster.id").read_text().strip())
    else:
        proc = None
    while time.monotonic() - began < wait_s:
        if proc is not None and proc.poll() is not None:
            raise KafkaError(f"broker {n} exited with {proc.returncode}; see {k.logs_dir}")
        if answers(k, timeout_s=2.0):
            return time.monotonic() - began
        time.sleep(0.3)
    raise KafkaError(f"broker {n} did not answer within {wait_s:.0f} s; see {k.logs_dir}")


def kill_node(c: LocalCluster, n: int) -> int | None:
    """``kill -9`` node ``n``: no controlled shutdown, as a crash or a lost machine."""
    pids = _stop_all([c.node(n)], wait_s=10.0, sig=signal.SIGKILL)
    return pids[0] if pids else None


def stop_cluster(c: LocalCluster, *, wait_s: float = 30.0) -> str:
    pids = _stop_all(list(c.nodes), wait_s)
    return (f"Kafka cluster stopped ({len(pids)} of {c.brokers} nodes were running)" if pids
            else "Kafka cluster is not running")


def cluster_status(c: LocalCluster) -> tuple[bool, str]:
    """(every node answers, a line per node)."""
    lines, ok = [], True
    for k in c.nodes:
        pid = running_pid(k)
        state = "not running" if pid is None else \
            "answering" if answers(k) else "not answering"
        ok = ok and state == "answering"
        lines.append(f"broker {k.node_id} on {k.bootstrap}: {state}"
                     + (f" (pid {pid})" if pid else ""))
    return ok, "\n".join(lines)
