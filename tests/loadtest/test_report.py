"""The report: percentiles, merging per-process seconds, the saturation verdict, files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadtest import report


def samples(name: str, cpus: list[float], t0: float = 100.0) -> list[dict[str, Any]]:
    return [{"t": t0 + i, "name": name, "role": "under test", "cpu": c, "rss_mb": 50.0 + i}
            for i, c in enumerate(cpus)]


def test_percentiles_of_known_values() -> None:
    p = report.percentiles([float(v) for v in range(1, 101)])
    assert p["n"] == 100 and p["max"] == 100.0
    assert p["p50"] == pytest.approx(50.5) and p["p99"] == pytest.approx(99.0, abs=0.1)
    assert report.percentiles([])["p99"] is None


def test_merge_seconds_adds_counts_and_joins_lists() -> None:
    rows = [{"second": 2, "fixes": 3, "latency_ms": [1.0], "errors": {"503": 1}},
            {"second": 1, "fixes": 5, "latency_ms": [2.0], "errors": {}},
            {"second": 2, "fixes": 4, "latency_ms": [3.0], "errors": {"503": 2, "400": 1}},
            {"done": True}]
    merged = report.merge_seconds(rows)
    assert [r["second"] for r in merged] == [1, 2]
    assert merged[1]["fixes"] == 7 and merged[1]["latency_ms"] == [1.0, 3.0]
    assert merged[1]["errors"] == {"503": 3, "400": 1}


def test_the_process_that_reaches_a_core_first_is_named() -> None:
    s = samples("ingest", [20, 40, 95, 96, 97, 98]) + samples("broadcast", [
        50, 92, 93, 94, 95, 96], t0=101.5)
    verdict = report.saturated_first(s, [])
    assert verdict["saturated"] and verdict["process"] == "ingest"
    assert verdict["peak_cpu"]["broadcast"] > 90


def test_a_growing_consumer_lag_is_named_when_no_cpu_saturates() -> None:
    probe = [{"second": i, "lag": {"zegama-live": 10 * i ** 2}} for i in range(12)]
    verdict = report.saturated_first(samples("process", [40.0] * 12), probe)
    assert verdict["saturated"] and verdict["process"] == "consumer group zegama-live"


def test_without_saturation_the_busiest_is_named_as_not_saturated() -> None:
    s = samples("ingest", [10, 12, 11]) + samples("broker", [30, 31, 29])
    verdict = report.saturated_first(s, [{"second": 1, "lag": {"g": 0}}])
    assert not verdict["saturated"] and verdict["process"] == "broker"


def test_latency_source_prefers_the_furthest_downstream() -> None:
    probe = [{"second": 1, "pings_ms": [5.0], "updates_ms": [80.0], "spectator_ms": []}]
    assert report.latency_source(probe)[0] == "updates_ms"
    probe.append({"second": 2, "spectator_ms": [300.0]})
    assert report.latency_source(probe)[0] == "spectator_ms"


def test_write_report_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    fleet = [{"second": 100 + i, "requests": 10, "fixes": 20, "accepted": 20, "errors": {},
              "latency_ms": [4.0, 6.0], "behind": 0} for i in range(10)]
    fleet[3]["errors"] = {"503": 2}
    probe = [{"second": 100 + i, "pings_ms": [10.0 + i], "updates_ms": [200.0 + i],
              "lag": {"zegama-live": 5 * (i % 4)}} for i in range(10)]
    run = {"config": {"command": "zegama-live loadtest --runners 20", "runners": 20,
                      "interval": 1.0, "duration": 10},
           "fleet": fleet, "probe": probe,
           "samples": samples("ingest", [30.0] * 10) + samples("broker", [20.0] * 10),
           "notes": ["broadcast: not in this version"]}
    summary = report.write_report(tmp_path, run)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["fixes_per_s"] == 20.0 and saved["errors"] == {"503": 2}
    assert saved["latency_source"] == "updates_ms" and saved["end_to_end"]["max"] == 209.0
    assert saved["lag_max"] == {"zegama-live": 15}
    md = (tmp_path / "report.md").read_text()
    assert "zegama-live loadtest --runners 20" in md and "Saturated first: **ingest**" in md
    for name in summary["plots"]:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert len(summary["plots"]) == 4


def test_machine_share_separates_other_processes_from_ours() -> None:
    s = samples("ingest", [50.0, 50.0]) + [
        {"t": 100.0 + i, "name": "machine", "role": "machine", "cpu": 150.0, "rss_mb": 1.0,
         "load1": 3.0} for i in range(2)]
    m = report.machine_share(s)
    assert m == {"total": 150.0, "ours": 50.0, "others": 100.0, "load1": 3.0}
    assert report.machine_share(samples("ingest", [1.0]))["others"] is None


def test_a_machine_full_of_other_work_is_named_when_no_process_saturates() -> None:
    s = samples("ingest", [30.0] * 5) + [
        {"t": 100.0 + i, "name": "machine", "role": "machine", "cpu": 195.0, "rss_mb": 1.0,
         "load1": 7.0} for i in range(5)]
    verdict = report.saturated_first(s, [], cores=2)
    assert verdict["saturated"] and verdict["process"] == "the machine's CPU"
    assert "165.0% by other processes" in verdict["why"]
    assert report.saturated_first(s, [], cores=4)["process"] == "ingest"
