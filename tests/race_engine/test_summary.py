"""Runner summaries: the board built from them is the board built from the full state."""

from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np
import pytest

from race_engine.board import build_board
from race_engine.engine import RaceEngine
from race_engine.racefolder import load_race
from race_engine.simulate import SimOptions, simulate
from race_engine.summary import RunnerSummary, summarize

RACE_DIR = Path(__file__).resolve().parents[2] / "races" / "zegama-2026"


def test_the_board_from_summaries_is_the_board_from_states() -> None:
    race = load_race(RACE_DIR)
    sim = simulate(race, np.random.default_rng(11), SimOptions(runners=40, incidents=True))
    engine = RaceEngine(race)
    copies = {b: RunnerSummary(b, engine.layout) for b in engine.runners}
    sent = {b: 0 for b in engine.runners}
    compared = 0
    for n, (fix, arrival) in enumerate(sim.pings()):
        engine.on_fix(None, fix, arrival)
        if n % 997 == 0:  # a copy kept by tails, as the per-race stage keeps it
            for b in engine.take_dirty():
                s = summarize(engine.runners[b])
                start = max(0, sent[b] - 5)
                copies[b].status, copies[b].raw_splits = s.status, s.raw_splits
                copies[b].last_t = s.last_t
                assert copies[b].extend(start, list(s.curve_m[start:]),
                                        list(s.curve_t[start:]))
                sent[b] = len(s.curve_m)
        if n % 4000 == 3999:
            full = build_board(race.id, engine.runners, engine.entrants, engine.curve, arrival)
            for b in engine.runners:
                copies[b] = summarize(engine.runners[b])
                sent[b] = len(copies[b].curve_m)
            small = build_board(race.id, copies, engine.entrants, engine.curve, arrival)
            assert small == full
            compared += 1
    assert compared >= 5 and full["finishers"]


def test_a_tail_past_the_end_is_refused_and_changes_nothing() -> None:
    race = load_race(RACE_DIR)
    s = RunnerSummary("1", RaceEngine(race).layout)
    assert s.current() is None and s.time_at(10.0) is None and s.furthest() == -1
    assert s.extend(0, [10.0, 20.0], [race.start_ms + 5_000, race.start_ms + 10_000])
    assert s.time_at(15.0) == pytest.approx(race.start_ms + 7_500)
    assert not s.extend(3, [40.0], [race.start_ms + 20_000])
    assert s.curve_m == array("d", [10.0, 20.0])
    assert s.extend(1, [25.0], [race.start_ms + 11_000])  # a late fix changed point 1
    assert list(s.curve_m) == [10.0, 25.0] and s.current() == (race.start_ms + 11_000, 25.0)
    with pytest.raises(ValueError, match="as many metres as times"):
        s.extend(0, [1.0], [])
