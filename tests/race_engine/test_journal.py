"""A runner's journal: a copy fed the entries in order ends equal to the original, so
the per-race stage can follow runners without being sent (or restoring) whole tracks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from race_engine.engine import EngineInputError, RaceEngine
from race_engine.model import ChipRead, Status
from race_engine.racefolder import load_race
from race_engine.runner import RunnerState
from race_engine.simulate import SimOptions, simulate

RACE_DIR = Path(__file__).resolve().parents[2] / "races" / "zegama-2026"


@pytest.fixture(scope="module")
def race():  # type: ignore[no-untyped-def]
    return load_race(RACE_DIR)


def _journaling(race) -> RaceEngine:  # type: ignore[no-untyped-def]
    engine = RaceEngine(race)
    for r in engine.runners.values():
        r.journal = []
    return engine


def _take(engine: RaceEngine) -> dict[str, list[list[object]]]:
    out = {}
    for bib, r in engine.runners.items():
        assert r.journal is not None
        if r.journal:
            out[bib], r.journal = r.journal, []
    return out


@pytest.mark.parametrize("every", [1, 97])
def test_a_copy_fed_the_journal_equals_the_original(race, every: int) -> None:  # type: ignore[no-untyped-def]
    """Late bursts, re-matches, an SOS and its resolution, chip reads (one replacing a
    later one), a manual split, DNF and reinstatement: the copy's state is the same."""
    sim = simulate(race, np.random.default_rng(11), SimOptions(runners=12, incidents=True))
    bibs = {e.device: e.bib for e in race.entrants}
    a, b = _journaling(race), RaceEngine(race)
    cps = [c.id for c in race.checkpoints]
    kinds = set()
    hour = 3_600_000
    due = {1: race.start_ms + hour, 2: race.start_ms + 2 * hour, 3: race.start_ms + 3 * hour}
    for n, (fix, arrival) in enumerate(sim.pings()):
        bib = bibs[fix.device]
        a.on_fix(bib, fix, arrival)
        step = next((k for k, t in due.items() if fix.t >= t), None)
        if step is not None:
            del due[step]
        if step == 1:
            a.on_chip_read(ChipRead(bib, cps[1], fix.t, "mat-1"), arrival)
            a.on_chip_read(ChipRead(bib, cps[1], fix.t - 4_000, "mat-2"), arrival)
            a.on_control({"op": "manual_split", "bib": bib, "checkpoint": cps[2],
                          "t_ms": fix.t + 60_000}, arrival)
        if step == 2:
            a.on_control({"op": "dnf", "bib": bib, "reason": "cold"}, arrival)
        if step == 3:
            a.on_control({"op": "reinstate", "bib": bib}, arrival)
            a.on_control({"op": "resolve_sos", "bib": bib}, arrival)
        if n % every == 0:
            for bib_, entries in _take(a).items():
                kinds.update(e[0] for e in entries)
                b.apply_journal(bib_, entries)
    for bib_, entries in _take(a).items():
        kinds.update(e[0] for e in entries)
        b.apply_journal(bib_, entries)
    assert kinds >= {"f", "s", "st", "c"}
    for bib, r in a.runners.items():
        assert b.runners[bib].to_dict() == r.to_dict(), bib
        assert b.runners[bib].gps == r.gps, bib
        assert b.runners[bib].digest() == r.digest(), bib
    finished = [r for r in a.runners.values() if r.status is Status.FINISHED]
    assert finished, "the simulated race should have finishers"
    assert b.board(race.start_ms + 10**8) == a.board(race.start_ms + 10**8)


def test_replaying_the_same_entries_twice_changes_nothing(race) -> None:  # type: ignore[no-untyped-def]
    sim = simulate(race, np.random.default_rng(2), SimOptions(runners=2, incidents=False))
    bibs = {e.device: e.bib for e in race.entrants}
    a, b = _journaling(race), RaceEngine(race)
    for fix, arrival in sim.pings():
        a.on_fix(bibs[fix.device], fix, arrival)
    journals = _take(a)
    for bib, entries in journals.items():
        b.apply_journal(bib, entries)
        before = b.runners[bib].to_dict()
        b.apply_journal(bib, [e for e in entries if e[0] == "f"])
        assert b.runners[bib].to_dict() == before


def test_a_copy_that_missed_entries_has_another_digest(race) -> None:  # type: ignore[no-untyped-def]
    """A copy that followed another history (here: it never got some fixes, as when a
    stale owner's entries took their journal numbers) is told apart by its digest."""
    sim = simulate(race, np.random.default_rng(4), SimOptions(runners=1, incidents=False))
    a = _journaling(race)
    for fix, arrival in sim.pings():
        a.on_fix(None, fix, arrival)
    (bib, entries), = _take(a).items()
    whole, gappy = RaceEngine(race), RaceEngine(race)
    whole.apply_journal(bib, entries)
    fixes = [k for k, e in enumerate(entries) if e[0] == "f"]
    gone = set(fixes[len(fixes) // 3: len(fixes) // 3 + 5])
    gappy.apply_journal(bib, [e for k, e in enumerate(entries) if k not in gone])
    assert whole.runners[bib].digest() == a.runners[bib].digest()
    assert gappy.runners[bib].digest() != a.runners[bib].digest()
    moved = RaceEngine(race)  # a manual split the original never had
    moved.apply_journal(bib, [*entries, ["s", race.checkpoints[1].id,
                                         race.start_ms + 60_000, 2]])
    assert moved.runners[bib].digest() != a.runners[bib].digest()


@pytest.mark.parametrize("entry", [["x"], ["f", 1], ["st", "resting", "", None], [], ["s", 3]])
def test_a_malformed_entry_is_an_input_error_naming_it(race, entry) -> None:  # type: ignore[no-untyped-def]
    engine = RaceEngine(race)
    bib = race.entrants[0].bib
    with pytest.raises(EngineInputError, match="malformed runner journal entry"):
        engine.apply_journal(bib, [entry])


def test_part_of_the_track_goes_to_track_dict(race) -> None:  # type: ignore[no-untyped-def]
    sim = simulate(race, np.random.default_rng(5), SimOptions(runners=1, incidents=False))
    engine = RaceEngine(race)
    for fix, arrival in sim.pings():
        engine.on_fix(None, fix, arrival)
    r = next(iter(r for r in engine.runners.values() if r.f_t))
    cut = r.f_t[len(r.f_t) // 2]
    head, older = r.to_dict(since=cut), r.track_dict(float("-inf"), cut)
    whole = r.to_dict()
    for part in ("fixes", "obs"):
        for k, v in whole[part].items():
            assert older[part][k] + head[part][k] == v
    assert min(head["fixes"]["t"]) == cut
    assert RunnerState.from_dict(whole, r.layout).to_dict() == whole
