"""The race-flow track: the first observation past each step of progress, plus the
latest, from the start."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from race_engine.engine import RaceEngine
from race_engine.flow import track
from race_engine.racefolder import load_race
from race_engine.runner import RunnerState
from race_engine.simulate import SimOptions, simulate

RACE_DIR = Path(__file__).resolve().parents[2] / "races" / "zegama-2026"


def _by_loop(r: RunnerState, step_m: float) -> list[list[float]]:
    """The rule spelled out one observation at a time."""
    out = [[0.0, 0.0]]
    next_m = step_m
    n = len(r.a_t)
    for i in range(n):
        m = r.a_m[i]
        if m >= next_m or i == n - 1:
            out.append([round((r.a_t[i] - r.layout.start_ms) / 1000.0, 1), round(m, 1)])
            next_m = (m // step_m + 1) * step_m
    return out


@pytest.mark.parametrize("step_m", [100.0, 250.0, 1000.0])
def test_track_keeps_the_first_point_past_each_step_and_the_latest(step_m: float) -> None:
    race = load_race(RACE_DIR)
    sim = simulate(race, np.random.default_rng(8), SimOptions(runners=4, incidents=True))
    engine = RaceEngine(race)
    for fix, arrival in sim.pings():
        engine.on_fix(None, fix, arrival)
    tracks = [(r, track(r, step_m)) for r in engine.runners.values() if r.a_t]
    assert len(tracks) == 4
    for r, got in tracks:
        want = _by_loop(r, step_m)
        assert len(got) == len(want)
        assert np.allclose(got, want, rtol=0, atol=0.1 + 1e-9)  # numpy's rounding, or Python's
        assert got[-1][0] == round((r.a_t[-1] - race.start_ms) / 1000.0, 1)
        assert [p[1] for p in got] == sorted(p[1] for p in got)
        assert len(got) <= race.course.length_m / step_m + 2


def test_no_observation_is_the_start_only_and_a_bad_step_is_refused() -> None:
    race = load_race(RACE_DIR)
    r = RaceEngine(race).runners[race.entrants[0].bib]
    assert track(r) == [[0.0, 0.0]]
    with pytest.raises(ValueError, match="positive"):
        track(r, 0.0)
