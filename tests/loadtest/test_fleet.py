"""The device fleet: device making, scheduling, and fixes that ingest's decoders accept."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest

from ingest.batch import decode_fixes
from ingest.osmand import decode_query
from loadtest import fleet
from race_engine.racefolder import load_race

RACE = Path("races/zegama-2026")
NOW_MS = 1_795_000_000_000


def pairs(n: int) -> list[tuple[str, str]]:
    return [(str(i), f"DEV-{i:04d}") for i in range(1, n + 1)]


def test_devices_take_the_batch_share_and_spread_their_phases() -> None:
    devices = fleet.make_devices(pairs(100), batch_share=0.3, interval_s=5.0)
    assert sum(d.batch for d in devices) == 30
    assert all(0.0 <= d.phase_s < 5.0 for d in devices)
    assert all(2.2 <= d.speed_mps <= 4.2 for d in devices)
    assert len({round(d.phase_s, 3) for d in devices}) > 90  # not all at once


@pytest.mark.parametrize(("share", "interval"), [(1.5, 5.0), (-0.1, 5.0), (0.3, 0.0)])
def test_bad_fleet_settings_are_refused_by_name(share: float, interval: float) -> None:
    with pytest.raises(ValueError, match=r"share|interval"):
        fleet.make_devices(pairs(3), batch_share=share, interval_s=interval)


def test_split_deals_every_device_once() -> None:
    devices = fleet.make_devices(pairs(10), batch_share=0.5, interval_s=1.0)
    shares = fleet.split(devices, 3)
    assert [len(s) for s in shares] == [4, 3, 3]
    assert sorted(d.device for s in shares for d in s) == sorted(d.device for d in devices)
    assert len(fleet.split(devices[:2], 8)) == 2  # never an empty process


def test_each_device_is_due_once_per_interval() -> None:
    devices = fleet.make_devices(pairs(50), batch_share=0.0, interval_s=2.0)
    t0 = 1000.0
    counts: dict[str, int] = {}
    ticks = round(10.0 / fleet.TICK_S)  # 10 s = 5 intervals
    for k in range(1, ticks + 1):
        for d in fleet.due(devices, 2.0, t0, t0 + k * fleet.TICK_S):
            counts[d.device] = counts.get(d.device, 0) + 1
    assert set(counts) == {d.device for d in devices}
    assert set(counts.values()) == {5}


def test_osmand_fix_decodes_in_ingest_with_its_send_time() -> None:
    d = fleet.make_devices(pairs(1), batch_share=0.0, interval_s=5.0)[0]
    params = fleet.osmand_query(d, 43.0123456, -2.26, 671.0, NOW_MS, "secret")
    decoded = decode_query(params, now_ms=NOW_MS)
    assert decoded.fix.device == "DEV-0001" and decoded.fix.t == NOW_MS
    assert decoded.fix.lat == pytest.approx(43.012346)
    assert decoded.speed == pytest.approx(d.speed_mps, rel=1e-3)


def test_json_fixes_decode_in_ingest_as_one_batch() -> None:
    devices = fleet.make_devices(pairs(3), batch_share=1.0, interval_s=5.0)
    body = orjson.dumps([fleet.json_fix(d, 43.0, -2.2, 700.0, NOW_MS) for d in devices])
    result = decode_fixes(body, max_items=1000, now_ms=NOW_MS)
    assert not result.rejected
    assert [a.value.device for a in result.accepted] == ["DEV-0001", "DEV-0002", "DEV-0003"]
    assert all(a.value.t == NOW_MS for a in result.accepted)


def test_prepared_race_loads_with_the_new_start_and_synthetic_devices(tmp_path: Path) -> None:
    start_ms = 1_795_256_679_000
    got = fleet.prepare_race(RACE, tmp_path / "zegama-2026", 520, start_ms)
    race = load_race(tmp_path / "zegama-2026")
    assert race.start_ms == start_ms
    assert len(race.entrants) == 520 and len(got) == 520
    assert got[0] == ("1", "ZGM-0001") and got[-1] == ("10520", "LT-00520")
    with open(tmp_path / "zegama-2026" / "entrants.csv", newline="") as f:
        assert len({r["device"] for r in csv.DictReader(f)}) == 520


def test_prepare_race_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"course\.gpx is missing"):
        fleet.prepare_race(tmp_path, tmp_path / "out", 10, NOW_MS)
    with pytest.raises(ValueError, match="at least one runner"):
        fleet.prepare_race(RACE, tmp_path / "out", 0, NOW_MS)
