"""A short real load test: broker, ingest (and the processors and broadcaster when this
version has them) as separate processes, a fleet of 20 devices at 1 fix/s, a report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import psutil
import pytest

from loadtest import cli
from loadtest.stack import Stack, StackError

pytestmark = pytest.mark.integration


def test_a_short_run_measures_the_stack_and_stops_it(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    out = tmp_path / "run"
    args = parser.parse_args(["--runners", "20", "--interval", "1", "--duration", "8",
                              "--spectators", "20", "--profile-s", "2", "--progress-s", "2",
                              "--out", str(out)])
    assert cli.run(args) == 0
    summary = json.loads((out / "report.json").read_text())
    assert summary["errors"] == {}
    assert summary["fixes_accepted"] == summary["fixes_sent"] > 100
    pings = summary["latencies"]["pings_ms"]
    assert pings["n"] > 100 and 0 < pings["p50"] < 1000
    # The processors, started against this test's brand-new broker, published cards.
    assert not [n for n in summary["notes"] if "no runner-updates" in n]
    assert summary["latencies"]["updates_ms"]["n"] > 0
    assert {"broker", "ingest", "fleet-0", "probe"} <= set(summary["cpu_mean"])
    assert summary["saturation"]["process"] is not None
    assert (out / "latency-cdf.png").exists() and "End-to-end latency" in (
        out / "report.md").read_text()
    assert (out / "logs" / "ingest.log").exists()
    assert not (out / "kafka" / "kafka.pid").exists()  # the broker was stopped


def test_a_failing_ingest_names_its_log_and_leaves_nothing_running(tmp_path: Path) -> None:
    stack = Stack(tmp_path, tmp_path / "no-such-race", processors=False, broadcast=False)
    with pytest.raises(StackError, match=r"ingest exited .* see .*ingest\.log"):
        stack.start()
    pids = [s.pid for s in stack.services]
    stack.stop()
    assert [s.name for s in stack.services] == ["broker", "ingest"]
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                   for p in pids)
