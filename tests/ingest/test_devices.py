"""The device registry: entrants.csv, reload on change, reassignment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.devices import DeviceRegistry, RegistryError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_devices_and_chips_resolve_to_bibs(race_dir: Path) -> None:
    reg = DeviceRegistry(race_dir)
    assert reg.reload() == 5
    assert reg.bib_of("ZGM-0001") == "101"
    assert reg.bib_of("902064") == "103"
    assert reg.bib_of("ZGM-9999") is None
    assert reg.bib_of("") is None  # bib 105 has no device
    assert reg.bib_of_chip("E2002") == "102"
    assert reg.has_bib("105") and not reg.has_bib("106")


def test_changed_file_is_reloaded_after_the_interval(race_dir: Path) -> None:
    clock = Clock()
    reg = DeviceRegistry(race_dir, reload_interval_s=2.0, clock=clock)
    reg.maybe_reload()
    assert reg.size() == 5
    csv_file = race_dir / "entrants.csv"
    csv_file.write_text(csv_file.read_text() + "106,New,F,SEN,ES,ZGM-0106,,\n")
    os.utime(csv_file, (1e9, 1e9))  # a different mtime, however coarse the file system
    clock.now = 1.0
    reg.maybe_reload()
    assert reg.bib_of("ZGM-0106") is None  # not yet: checked at most every 2 s
    clock.now = 2.5
    reg.maybe_reload()
    assert reg.bib_of("ZGM-0106") == "106"


def test_a_broken_file_keeps_the_previous_entrants(race_dir: Path) -> None:
    clock = Clock()
    reg = DeviceRegistry(race_dir, reload_interval_s=0.0, clock=clock)
    reg.reload()
    (race_dir / "entrants.csv").write_text("bib,name,sex,category,country,device\n"
                                           "1,A,F,SEN,ES,D1\n2,B,M,SEN,ES,D1\n")
    os.utime(race_dir / "entrants.csv", (1e9, 1e9))
    reg.maybe_reload()
    assert reg.bib_of("ZGM-0001") == "101"
    assert "D1" in reg.last_error
    with pytest.raises(RegistryError):
        reg.reload()


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    reg = DeviceRegistry(tmp_path)
    with pytest.raises(RegistryError, match=r"entrants\.csv"):
        reg.reload()
    reg.maybe_reload()  # never raises
    assert "entrants.csv" in reg.last_error


def test_reassignment_wins_and_survives_reload(race_dir: Path) -> None:
    reg = DeviceRegistry(race_dir)
    reg.reload()
    reg.reassign("SPARE-01", "101")
    reg.reassign("ZGM-0002", "101")  # race control moved a tracker between runners
    reg.reload()
    assert reg.bib_of("SPARE-01") == "101" and reg.bib_of("ZGM-0002") == "101"
    reg.reassign("ZGM-0002", None)
    assert reg.bib_of("ZGM-0002") == "102"
    assert reg.reassignments() == {"SPARE-01": "101"}
    with pytest.raises(RegistryError, match="bib 999"):
        reg.reassign("SPARE-02", "999")
    with pytest.raises(RegistryError, match="device id"):
        reg.reassign("  ", "101")
