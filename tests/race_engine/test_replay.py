"""Replay: the engine over a recorded stream, as the offline tool and the live system run it."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import orjson
import pytest

from race_engine.fixes import encode_fix
from race_engine.racefolder import load_race
from race_engine.replay import BAD_JSON, UNKNOWN_DEVICE, replay
from race_engine.replay_cli import configure, run
from race_engine.simulate import SimOptions, Simulation, simulate
from zegama_live.cli import build_parser

RACE_DIR = Path(__file__).resolve().parents[2] / "races" / "zegama-2026"


@pytest.fixture(scope="module")
def race():  # type: ignore[no-untyped-def]
    return load_race(RACE_DIR)


@pytest.fixture(scope="module")
def sim(race) -> Simulation:  # type: ignore[no-untyped-def]
    return simulate(race, np.random.default_rng(7), SimOptions(runners=12, incidents=False))


@pytest.fixture(scope="module")
def replayed(race, sim):  # type: ignore[no-untyped-def]
    return replay(race, lines_of(sim))


def lines_of(sim: Simulation) -> list[bytes]:
    return [orjson.dumps({**encode_fix(fix), "arrival": arrival}) for fix, arrival in sim.pings()]


def test_replayed_splits_match_the_true_crossings(replayed, sim) -> None:  # type: ignore[no-untyped-def]
    result = replayed
    truth = {(c.bib, c.checkpoint): c.t for c in sim.crossings}
    got = {(s["bib"], s["checkpoint"]): s["t"] for s in result.splits}
    common = [k for k in truth if k in got and k[1] != "start"]
    assert len(common) >= 0.9 * len([k for k in truth if k[1] != "start"])
    errors = [abs(got[k] - truth[k]) / 1000.0 for k in common]
    # A sanity bound only: split accuracy is measured by benchmarks/accuracy.py.
    assert statistics.median(errors) < 10.0
    assert result.stats.fixes == len(sim.t)
    assert not result.stats.rejected


def test_replay_equals_the_engine_fed_directly(race, sim, replayed) -> None:  # type: ignore[no-untyped-def]
    from race_engine.engine import RaceEngine

    engine = RaceEngine(race)
    for fix, arrival in sim.pings():
        engine.on_fix(None, fix, arrival)
    direct = {(r.bib, s.checkpoint): s.t_ms for r in engine.runners.values() for s in r.splits()}
    assert {(s["bib"], s["checkpoint"]): s["t"] for s in replayed.splits} == direct


def test_splits_are_ranked_per_checkpoint_by_time(replayed) -> None:  # type: ignore[no-untyped-def]
    result = replayed
    by_cp: dict[str, list[tuple[int, int]]] = {}
    for s in result.splits:
        by_cp.setdefault(s["checkpoint"], []).append((s["rank"], s["t"]))
    for rows in by_cp.values():
        rows.sort()
        assert [r for r, _ in rows] == list(range(1, len(rows) + 1))
        assert [t for _, t in rows] == sorted(t for _, t in rows)


def test_bad_lines_are_counted_by_reason_and_skipped(race, sim) -> None:  # type: ignore[no-untyped-def]
    good = lines_of(sim)[:200]
    bad = [b"{not json", b'{"device": "NOBODY", "ts": 1779000000000, "lat": 42.9, "lon": -2.3}',
           b'{"device": "ZGM-0001", "ts": 1779000000000, "lat": 142.9, "lon": -2.3}', b""]
    result = replay(race, bad + good)
    assert result.stats.fixes == 200
    assert result.stats.rejected[BAD_JSON] == 1
    assert result.stats.rejected[UNKNOWN_DEVICE] == 1
    assert result.stats.rejected["bad_lat"] == 1
    assert result.stats.examples[0].startswith("line 1: bad_json")


def test_the_cli_writes_splits_standings_and_alerts(tmp_path: Path, sim) -> None:  # type: ignore[no-untyped-def]
    pings = tmp_path / "pings.jsonl"
    pings.write_bytes(b"\n".join(lines_of(sim)[:3000]) + b"\n")
    args = build_parser().parse_args(["replay", str(RACE_DIR), str(pings), "--out",
                                      str(tmp_path / "out")])
    assert run(args) == 0
    splits = [orjson.loads(x) for x in (tmp_path / "out" / "splits.jsonl").read_bytes().split()]
    assert splits and set(splits[0]) == {"bib", "checkpoint", "t", "rank"}
    standings = orjson.loads((tmp_path / "out" / "standings.json").read_bytes())
    assert standings["race"] == "zegama-2026" and standings["runners"]
    assert (tmp_path / "out" / "alerts.jsonl").exists()


def test_the_cli_refuses_a_bad_race_folder_or_missing_file(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import argparse

    parser = argparse.ArgumentParser()
    configure(parser)
    assert run(parser.parse_args([str(tmp_path), str(tmp_path / "p.jsonl"), "--out",
                                  str(tmp_path / "o")])) == 2
    assert "error:" in capsys.readouterr().err
    assert run(parser.parse_args([str(RACE_DIR), str(tmp_path / "missing.jsonl"), "--out",
                                  str(tmp_path / "o")])) == 2
    assert "missing.jsonl" in capsys.readouterr().err
