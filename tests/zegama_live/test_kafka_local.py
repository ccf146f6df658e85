"""The local broker manager without a broker: process checks, cluster layout, replication."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from zegama_live import kafka_local
from zegama_live.kafka_local import LocalCluster, LocalKafka


def test_a_zombie_broker_counts_as_stopped_and_stop_returns_at_once(tmp_path: Path) -> None:
    # The demo starts the broker as its own child; a `kafka stop` from another shell
    # ended it, but until the demo reaps it the process is a zombie: os.kill(pid, 0)
    # still succeeds, and stop waited its whole 30 s before.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    k = LocalKafka(home=tmp_path)
    tmp_path.mkdir(exist_ok=True)
    k.pid_file.write_text(str(child.pid))
    assert kafka_local.running_pid(k) == child.pid
    # Another process's view: it may signal the pid but cannot reap it. Block our own
    # reaping by waiting only after stop returned.
    os.kill(child.pid, signal.SIGSTOP)  # as a broker slow to react, then gone
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child did not become a zombie"
        time.sleep(0.02)
    os.kill(child.pid, 0)  # a zombie still "exists" for signals
    assert kafka_local.running_pid(k) is None
    began = time.monotonic()
    assert kafka_local.stop(k) == "Kafka is not running"
    assert time.monotonic() - began < 1.0
    child.wait()


def test_stop_returns_as_soon_as_the_process_is_gone(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    k = LocalKafka(home=tmp_path)
    k.pid_file.write_text(str(child.pid))
    began = time.monotonic()
    assert kafka_local.stop(k) == f"Kafka stopped (pid {child.pid})"
    assert time.monotonic() - began < 2.0
    assert not k.pid_file.exists()
    child.wait(1)  # reaped by stop already (our child here)


def test_a_cluster_has_its_nodes_ports_quorum_and_replication(tmp_path: Path) -> None:
    c = LocalCluster(home=tmp_path, port=29500, brokers=3)
    assert c.bootstrap == "127.0.0.1:29500,127.0.0.1:29502,127.0.0.1:29504"
    props = kafka_local._server_properties(c.node(2))
    assert "node.id=2\n" in props
    assert "controller.quorum.voters=1@127.0.0.1:29501,2@127.0.0.1:29503,3@127.0.0.1:29505\n" \
        in props
    assert "listeners=PLAINTEXT://127.0.0.1:29502,CONTROLLER://127.0.0.1:29503\n" in props
    assert "min.insync.replicas=2\n" in props and "default.replication.factor=3\n" in props
    assert str(tmp_path / "node-2" / "data") in props
    single = kafka_local._server_properties(LocalKafka(home=tmp_path, port=29600,
                                                       controller_port=29601))
    assert "min.insync.replicas=1\n" in single and "controller.quorum.voters=1@127.0.0.1:29601\n" \
        in single
    assert kafka_local.replication(1) == (1, 1) and kafka_local.replication(3) == (3, 2)
    assert kafka_local.replication(5) == (3, 2)


def test_stop_and_status_find_the_cluster_start_made(tmp_path: Path) -> None:
    assert kafka_local.cluster_in(tmp_path) is None
    (tmp_path / "cluster.json").write_text('{"brokers": 3, "port": 29700}')
    c = kafka_local.cluster_in(tmp_path)
    assert c == LocalCluster(home=tmp_path, port=29700, brokers=3)
    ok, lines = kafka_local.cluster_status(c)
    assert not ok and lines.count("not running") == 3


def test_a_cluster_id_never_reads_as_an_option() -> None:
    ids = {kafka_local.new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000 and not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 for i in ids)
