"""``zegama-live simulate``: the files it writes, determinism, and its errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import orjson
import pytest

from race_engine.fixes import decode_fix
from race_engine.racefolder import load_race
from zegama_live.cli import main

RACE = "races/example-loop"
FILES = ("pings.jsonl", "truth.jsonl", "truth_status.jsonl", "scenario.json")


def run(out: Path, *extra: str) -> int:
    return main(["simulate", RACE, "--runners", "12", "--out", str(out), *extra])


def lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_writes_pings_truth_outcomes_and_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, "--seed", "4") == 0
    printed = capsys.readouterr().out
    assert "runners   12:" in printed and "pings.jsonl" in printed
    pings = lines(tmp_path / "pings.jsonl")
    race = load_race(RACE)
    devices = {e.device for e in race.entrants[:12]}
    assert pings and all(decode_fix(p).device in devices for p in pings)
    arrivals = [p["arrival"] for p in pings]
    assert arrivals == sorted(arrivals)  # type: ignore[type-var]
    truth = lines(tmp_path / "truth.jsonl")
    ids = {cp.id for cp in race.checkpoints}
    assert truth and all(set(t) == {"bib", "checkpoint", "t"} and t["checkpoint"] in ids
                         for t in truth)
    status = lines(tmp_path / "truth_status.jsonl")
    assert [s["bib"] for s in status] == [e.bib for e in race.entrants[:12]]
    assert all(s["status"] in ("finished", "dnf") for s in status)
    finished = {s["bib"]: s["finish"] for s in status if s["status"] == "finished"}
    at_finish = {t["bib"]: t["t"] for t in truth if t["checkpoint"] == race.checkpoints[-1].id}
    assert finished == at_finish
    scenario = orjson.loads((tmp_path / "scenario.json").read_bytes())
    assert scenario["seed"] == 4 and scenario["fixes_delivered"] == len(pings)


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    assert run(tmp_path / "a", "--seed", "9") == 0
    assert run(tmp_path / "b", "--seed", "9") == 0
    assert run(tmp_path / "c", "--seed", "10") == 0
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / FILES[0]).read_bytes() != (tmp_path / "c" / FILES[0]).read_bytes()


def test_options_reach_the_simulation(tmp_path: Path) -> None:
    assert run(tmp_path, "--interval", "30", "--loss", "0", "--no-incidents") == 0
    pings = lines(tmp_path / "pings.jsonl")
    assert not any(p.get("sos") for p in pings)
    scenario = orjson.loads((tmp_path / "scenario.json").read_bytes())
    assert scenario["interval_s"] == 30.0 and scenario["incidents"] is False
    mine = sorted(p["ts"] for p in pings if p["device"] == pings[0]["device"])  # type: ignore[type-var]
    gaps = [b - a for a, b in itertools.pairwise(mine)]  # type: ignore[operator]
    assert min(gaps) >= 0.4 * 30_000 and max(gaps) <= 1.6 * 30_000  # nothing lost


def test_checkpoint_options_reach_the_simulation(tmp_path: Path) -> None:
    assert run(tmp_path, "--stops", "30,60", "--off-at-finish", "--detours", "0.5") == 0
    scenario = orjson.loads((tmp_path / "scenario.json").read_bytes())
    assert scenario["checkpoint_stop_s"] == [30.0, 60.0]
    assert scenario["tracker_off_at_finish"] is True and scenario["checkpoint_detours"] == 0.5
    status = lines(tmp_path / "truth_status.jsonl")
    finished = [s for s in status if s["status"] == "finished" and s["device"]]
    assert finished and all(s["tracking_until"] <= s["finish"] for s in finished)  # type: ignore[operator]


def test_a_stop_range_that_is_not_two_numbers_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, "--stops", "90")
    assert exc.value.code == 2
    assert "expected LO,HI in seconds" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", "no/such/race", "--out", "OUT"], "no such race folder"),
        (["simulate", RACE, "--runners", "999", "--out", "OUT"], "cannot simulate 999"),
        (["simulate", RACE, "--loss", "1.5", "--out", "OUT"], "loss must be"),
        (["simulate", RACE, "--stops", "90,10", "--out", "OUT"], "checkpoint stop must be"),
        (["simulate", RACE, "--detours", "2", "--out", "OUT"], "probability in [0, 1]"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_broken_race_folder_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    race = tmp_path / "broken"
    race.mkdir()
    (race / "course.gpx").write_text("<gpx><trk>", encoding="utf-8")
    assert main(["simulate", str(race), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "course.gpx" in err and "Fix:" in err
