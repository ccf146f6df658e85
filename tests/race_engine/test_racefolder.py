from __future__ import annotations

import importlib.util
import pickle
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from race_engine.model import AlertThresholds
from race_engine.racefolder import RaceFolderError, load_course, load_entrants, load_race

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "races"


def test_demo_race_loads() -> None:
    race = load_race(ROOT / "races" / "zegama-2026")
    assert race.id == "zegama-2026"
    assert race.approximate
    assert race.timezone == "Europe/Madrid"
    assert race.start_ms == int(datetime(2026, 5, 17, 7, 0, tzinfo=UTC).timestamp() * 1000)
    assert race.time_limit_s == 8 * 3600
    ids = [cp.id for cp in race.checkpoints]
    assert len(ids) == 15 and ids[0] == "start" and ids[-1] == "finish"  # 13 + start, finish
    assert race.checkpoint("sancti-spiritu").cutoff_s == 3 * 3600 + 15 * 60
    assert race.checkpoint("finish").m == pytest.approx(race.course.length_m)
    assert race.checkpoint("finish").cutoff_s == race.time_limit_s
    assert race.checkpoint("aizkorri").km == pytest.approx(22.1, abs=0.01)
    assert [(r.checkpoint, r.t_s) for r in race.record] == [
        ("sancti-spiritu", 6192.0), ("aizkorri", 7513.0), ("finish", 13000.0)]
    assert [z.id for z in race.danger_zones] == ["aizkorri-ridge"]
    assert race.danger_zones[0].contains(23_000.0)
    assert race.thresholds == AlertThresholds()
    assert len(race.entrants) == 500
    assert len(race.entrant_by_device()) == 500
    first = race.entrants[0]
    assert first.device == "ZGM-0001"
    assert "emergency_phone" in first.private
    assert "emergency_phone" not in first.public()


def test_example_loop_loads_and_scales_nominal_km() -> None:
    race = load_race(ROOT / "races" / "example-loop")
    length_km = race.course.length_m / 1000
    assert 14.0 < length_km < 14.0 * 1.02  # the GPX measures more than the published 14 km
    finish = race.checkpoints[-1]
    assert finish.km == pytest.approx(length_km)
    summit = race.checkpoint("summit-cairn")
    assert summit.km == pytest.approx(6.4 * length_km / 14.0)
    assert summit.cutoff_s == 7200.0
    assert race.danger_zones[0].km_to == pytest.approx(7.5 * length_km / 14.0)
    assert race.thresholds.off_course_m == 100.0
    assert race.thresholds.no_fix_min == AlertThresholds().no_fix_min
    assert race.record[0].t_s == 4350.0
    assert race.timezone == "Europe/London"
    assert race.entrants[0].bib == "101"  # BOM stripped from the first header
    without_device = [e for e in race.entrants if not e.device]
    assert without_device
    assert len(race.entrant_by_device()) == len(race.entrants) - len(without_device)
    assert set(race.entrants[0].private) == {"club", "emergency_phone"}


def test_mini_race_loads() -> None:
    race = load_race(DATA / "mini")
    assert race.id == "mini"
    assert not race.approximate
    assert race.entrants[2].device == ""


@pytest.mark.parametrize(
    ("folder", "file", "where"),
    [
        ("bad-duplicate-bib", "entrants.csv", "line 6, bib"),
        ("bad-malformed-gpx", "course.gpx", "line 6"),
        ("bad-unknown-key", "race.toml", "race.timelimit_hard"),
        ("bad-missing-entrants", "entrants.csv", "file"),
    ],
)
def test_bad_fixture_folders(folder: str, file: str, where: str) -> None:
    with pytest.raises(RaceFolderError) as info:
        load_race(DATA / folder)
    err = info.value
    assert err.file.endswith(file)
    assert where in err.where
    assert str(err).startswith(f"{err.file}, {err.where}: ")
    assert "Fix: " in str(err)


def test_unknown_key_suggests_the_known_one() -> None:
    with pytest.raises(RaceFolderError) as info:
        load_race(DATA / "bad-unknown-key")
    assert "did you mean 'time_limit'" in info.value.fix


def test_missing_folder() -> None:
    with pytest.raises(RaceFolderError) as info:
        load_race(DATA / "no-such-race")
    assert info.value.where == "folder"


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    folder = tmp_path / "mini-copy"
    shutil.copytree(DATA / "mini", folder)
    return folder


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture lacks {old!r}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


TOML_CASES = [
    # (old, new, where, words in the problem)
    ('name = "Mini race"', 'name = "Mini race', "line 2, column 18", "not valid TOML"),
    ("km = 1.0", "km = 2.5", "checkpoints[2].km", "beyond the course length 2.002 km"),
    ("km = 1.0", "km = 2.01", "checkpoints[3].km", "not after"),
    ("km = 1.0", "km = 0", "checkpoints[2].km", "not after"),
    ("km = 2.0", "km = 1.9", "checkpoints[3].km", "2% away"),
    ('cutoff = "0:30:00"', 'cutoff = "30 min"', "checkpoints[2].cutoff", "h:mm:ss"),
    ('cutoff = "0:30:00"', "cutoff = 00:30:00", "checkpoints[2].cutoff", "h:mm:ss"),
    ('cutoff = "0:30:00"', 'cutoff = "1:30:00"', "checkpoints[2].cutoff", "time limit"),
    ('time_limit = "1:00:00"', 'time_limit = "1:0:00"', "race.time_limit", "h:mm:ss"),
    ('time = "0:04:00"', 'time = "0:08:00"', "record[2]", "does not come after"),
    ('checkpoint = "top"', 'checkpoint = "summit"', "record[1].checkpoint", "no checkpoint"),
    ("km = 0\n", 'km = "0"\n', "checkpoints[1].km", "not a number"),
    ("km = 0\n", "km = 0.3\n", "checkpoints[1].km", "start"),
    ('id = "top"\n', 'id = "start"\n', "checkpoints[2].id", "used twice"),
    ("km_to = 1.2", "km_to = 0.5", "danger_zones[1]", "not a stretch"),
    ("km_to = 1.2", "km_to = 2.5", "danger_zones[1]", "not a stretch"),
    ("+02:00", "", "race.start", "no UTC offset"),
    ("+02:00", "+01:00", "race.start", "does not match Europe/Madrid"),
    ('start = "2026-05-17T09:00:00+02:00"', 'start = "17/05/2026 09:00"', "race.start",
     "ISO"),
    ('"Europe/Madrid"', '"Europe/Zegama"', "race.timezone", "unknown time zone"),
    ("[race]", "[runners]\nmax = 500\n\n[race]", "runners", "unknown table"),
    ('name = "Top"', 'name = "Top"\nkms = 1.0', "checkpoints[2].kms", "unknown key"),
    ('name = "Mini race"\n', "", "race.name", "missing key"),
]


@pytest.mark.parametrize(("old", "new", "where", "problem"), TOML_CASES)
def test_bad_race_toml(mini: Path, old: str, new: str, where: str, problem: str) -> None:
    edit(mini / "race.toml", old, new)
    with pytest.raises(RaceFolderError) as info:
        load_race(mini)
    assert info.value.file.endswith("race.toml")
    assert info.value.where == where
    assert problem in info.value.problem


def test_alert_thresholds_are_checked(mini: Path) -> None:
    with (mini / "race.toml").open("a", encoding="utf-8") as f:
        f.write("\n[alerts]\nno_fix_min = 5\nsos_beep = true\n")
    with pytest.raises(RaceFolderError) as info:
        load_race(mini)
    assert info.value.where == "alerts.sos_beep"
    edit(mini / "race.toml", "sos_beep = true\n", "")
    assert load_race(mini).thresholds.no_fix_min == 5.0


def test_low_battery_is_a_fraction(mini: Path) -> None:
    with (mini / "race.toml").open("a", encoding="utf-8") as f:
        f.write("\n[alerts]\nlow_battery = 15\n")
    with pytest.raises(RaceFolderError) as info:
        load_race(mini)
    assert info.value.where == "alerts.low_battery"


def test_error_survives_pickling() -> None:
    err = RaceFolderError("race.toml", "race.name", "missing", "add it")
    back = pickle.loads(pickle.dumps(err))
    assert (back.file, back.where, back.problem, back.fix) == ("race.toml", "race.name",
                                                               "missing", "add it")
    assert str(back) == str(err)


def test_native_toml_datetime_start_is_accepted(mini: Path) -> None:
    edit(mini / "race.toml", 'start = "2026-05-17T09:00:00+02:00"',
         "start = 2026-05-17T09:00:00+02:00")
    assert load_race(mini).start_ms == load_race(DATA / "mini").start_ms


def test_gpx_without_points(mini: Path) -> None:
    shutil.copy(ROOT / "tests" / "data" / "gpx" / "waypoints-only.gpx", mini / "course.gpx")
    with pytest.raises(RaceFolderError) as info:
        load_race(mini)
    assert info.value.file.endswith("course.gpx")
    assert "no track or route points" in info.value.problem


def test_latin1_gpx_loads(mini: Path) -> None:
    text = (mini / "course.gpx").read_text(encoding="utf-8")
    text = text.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    text = text.replace("<trk>", "<trk><name>Subida a San Adrián</name>")
    (mini / "course.gpx").write_bytes(text.encode("latin-1"))
    assert len(load_race(mini).course) == 5


ENTRANT_CASES = [
    # (old, new, where, words in the problem)
    ("bib,name,sex,category,country,device", "bib,name,sex,category,device",
     "line 1 (header)", "country"),
    ("DEV-2", "DEV-1", "line 3, device", "already used on line 2"),
    ("2,Tom Walker", ",Tom Walker", "line 3, bib", "empty"),
    ("2,Tom Walker,M,V40", "2,,M,V40", "line 3, name", "empty"),
    ("2,Tom Walker,M", "2,Tom Walker,Jr,M", "line 3", "number of fields"),
    ("3,Léa Martin,F,SEN,FR,,+33 555 0003", "3,Léa Martin,F", "line 4", "number of fields"),
]


@pytest.mark.parametrize(("old", "new", "where", "problem"), ENTRANT_CASES)
def test_bad_entrants(mini: Path, old: str, new: str, where: str, problem: str) -> None:
    edit(mini / "entrants.csv", old, new)
    with pytest.raises(RaceFolderError) as info:
        load_entrants(mini / "entrants.csv")
    assert info.value.file.endswith("entrants.csv")
    assert info.value.where == where
    assert problem in info.value.problem


def test_entrants_not_utf8(mini: Path) -> None:
    (mini / "entrants.csv").write_bytes("bib,name,sex,category,country,device\n"
                                       "1,Léa,F,SEN,FR,D1\n".encode("latin-1"))
    with pytest.raises(RaceFolderError) as info:
        load_entrants(mini / "entrants.csv")
    assert info.value.where == "line 2"


def test_quoted_names_and_blank_lines(mini: Path) -> None:
    (mini / "entrants.csv").write_text(
        'bib,name,sex,category,country,device\n\n7,"Agirre, Ane",F,SEN,ES,\n', encoding="utf-8")
    (e,) = load_entrants(mini / "entrants.csv")
    assert (e.bib, e.name, e.device, e.private) == ("7", "Agirre, Ane", "", {})


def test_demo_folders_are_what_the_generator_writes(tmp_path: Path) -> None:
    """The committed demo folders are reproducible from tools/build_demo_race.py."""
    spec = importlib.util.spec_from_file_location("build_demo_race",
                                                  ROOT / "tools" / "build_demo_race.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    sys.modules["build_demo_race"] = tool  # dataclasses look their module up there
    try:
        spec.loader.exec_module(tool)
    finally:
        del sys.modules["build_demo_race"]
    assert tool.main(["--out", str(tmp_path)]) == 0
    for name in ("zegama-2026", "example-loop"):
        for file in ("race.toml", "entrants.csv", "README.md"):
            built = (tmp_path / name / file).read_bytes()
            assert built == (ROOT / "races" / name / file).read_bytes(), f"{name}/{file}"
        # Floating point may differ in the last digits between machines: compare values.
        built_course = load_course(tmp_path / name / "course.gpx")
        course = load_course(ROOT / "races" / name / "course.gpx")
        assert len(built_course) == len(course)
        assert np.abs(built_course.lat - course.lat).max() < 1e-6
        assert np.abs(built_course.lon - course.lon).max() < 1e-6
        assert np.abs(built_course.ele - course.ele).max() < 0.1
