"""Shared fixtures. Integration tests get a real Apache Kafka broker, started once per
test session in its own folder and ports (so a running demo is left alone) and stopped
at the end."""

from __future__ import annotations

import os
import random
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from zegama_live import kafka_local
from zegama_live.kafka_local import LocalKafka


def _free_port_pair() -> int:
    """A port p such that p and p+1 are both free (client and controller listeners).

    Picked below Linux's ephemeral range (32768+), which load tests with thousands of
    client sockets can fill."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 32_000)
        try:
            for p in (port, port + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no two consecutive free ports on 127.0.0.1 within 20000-32000")


@dataclass
class Broker:
    """The session's broker; the fault tests stop and restart it."""

    config: LocalKafka

    @property
    def bootstrap(self) -> str:
        return self.config.bootstrap

    def start(self) -> str:
        return kafka_local.start(self.config)

    def stop(self) -> str:
        return kafka_local.stop(self.config)

    def answers(self) -> bool:
        return kafka_local.answers(self.config)


def _remove_stale_brokers(root: Path) -> None:
    """Folders of earlier test sessions whose broker is gone (e.g. an interrupted run)."""
    for home in root.glob("session-*"):
        config = LocalKafka(home=home)
        if kafka_local.running_pid(config) is None:
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Broker]:
    # One folder per test session: two sessions on one machine (a developer's and a
    # second checkout's) never stop or wipe each other's broker.
    root = kafka_local.REPO / "var" / "kafka-test"
    _remove_stale_brokers(root)
    home = root / f"session-{os.getpid()}"
    # A free port can be taken by another process between the check and the broker's
    # bind (other test sessions, load tests): try fresh ports a few times.
    for attempt in range(4):
        port = _free_port_pair()
        broker = Broker(LocalKafka(home=home, port=port, controller_port=port + 1))
        try:
            message = broker.start()
            break
        except kafka_local.KafkaError:
            if attempt == 3:
                raise
            shutil.rmtree(home, ignore_errors=True)
    jars = sorted(p.name for p in kafka_local.LIBS.glob("kafka_2.13-*.jar"))
    _started.append(f"integration tests: real Apache Kafka broker ({', '.join(jars)}): {message}")
    yield broker
    print(broker.stop())
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def kafka_bootstrap(kafka_broker: Broker) -> str:
    if not kafka_broker.answers():  # a test stopped it and failed before restarting it
        kafka_broker.start()
    return kafka_broker.bootstrap


_started: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say in the test output which real broker the integration tests ran against."""
    for line in _started:
        terminalreporter.write_line(line)
