"""Runner states stored in parts: what is read back equals what was written, and a write
costs about the same at the end of a race as at its start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from race_engine.engine import RaceEngine
from race_engine.model import ChipRead
from race_engine.racefolder import load_race
from race_engine.runner import RunnerState
from race_engine.simulate import SimOptions, simulate
from stream_processors.store import RunnerStore, chunk_key, is_chunk_key

RACE_DIR = Path(__file__).resolve().parents[2] / "races" / "zegama-2026"


@pytest.fixture(scope="module")
def race():  # type: ignore[no-untyped-def]
    return load_race(RACE_DIR)


def _read(store: RunnerStore, table: dict[bytes, bytes], key: bytes,
          layout: Any) -> tuple[RunnerState | None, int]:
    head = table.get(key)
    state = store.read(key, None if head is None else orjson.loads(head),
                       lambda k: orjson.loads(table[k]) if k in table else None)
    return (None if state is None else RunnerState.from_dict(state, layout)), (
        None if state is None else state.get("alerts"))


def test_a_runner_written_as_it_runs_reads_back_whole(race) -> None:  # type: ignore[no-untyped-def]
    sim = simulate(race, np.random.default_rng(4), SimOptions(runners=1, incidents=False))
    engine = RaceEngine(race)
    store, table = RunnerStore(chunk=16), {}
    key = b"zegama-2026:1"
    sizes = []
    pings = list(sim.pings())
    bib = race.entrants[0].bib
    for n, (fix, arrival) in enumerate(pings, 1):
        r = engine.runners[bib]
        r.journal = []
        engine.on_fix(bib, fix, arrival)
        if n == len(pings) // 2:
            engine.on_chip_read(ChipRead(bib, race.checkpoints[1].id, fix.t - 1000, "m"),
                                arrival)
        store.mark(key, engine.runners[bib].journal or [])
        if n % 7 == 0 or n == len(pings):
            writes = store.writes(key, engine.runners[bib], {"alerts": [n]})
            table.update(writes)
            sizes.append(sum(len(v) for _, v in writes))
    got, extra = _read(RunnerStore(chunk=16), table, key, engine.layout)
    assert got is not None and extra == [len(pings)]
    assert got.to_dict() == engine.runners[bib].to_dict()
    assert got.gps == engine.runners[bib].gps
    assert sum(is_chunk_key(k) for k in table) > 10
    # the chip read rewrote every chunk once; otherwise the cost does not grow with the race
    late = sizes[len(sizes) * 3 // 4:]
    assert max(late) < 3 * max(sizes[: len(sizes) // 4]) + 2_000


def test_a_late_fix_rewrites_only_the_chunk_it_lands_in(race) -> None:  # type: ignore[no-untyped-def]
    sim = simulate(race, np.random.default_rng(4), SimOptions(runners=1, incidents=False))
    engine = RaceEngine(race)
    store, table = RunnerStore(chunk=8), {}
    key = b"zegama-2026:1"
    bib = race.entrants[0].bib
    pings = sorted(sim.pings(), key=lambda p: p[0].t)
    held = pings.pop(len(pings) // 3)
    for fix, arrival in pings:
        engine.on_fix(bib, fix, arrival)
        table.update(store.writes(key, engine.runners[bib]))
    r = engine.runners[bib]
    r.journal = []
    engine.on_fix(bib, held[0], held[1])
    store.mark(key, r.journal)
    writes = dict(store.writes(key, r))
    chunks = [k for k in writes if is_chunk_key(k)]
    assert len(chunks) == 1 and key in writes
    table.update(writes)
    got, _ = _read(store, table, key, engine.layout)
    assert got is not None and got.to_dict() == r.to_dict()


def test_no_head_is_a_fresh_runner_and_a_missing_chunk_is_an_error(race) -> None:  # type: ignore[no-untyped-def]
    store = RunnerStore()
    assert store.read(b"r:1", None, lambda k: None) is None
    head = {"bounds": [5], "fixes": {"t": []}, "obs": {"t": []}}
    with pytest.raises(ValueError, match="chunk 0 of 1 is missing"):
        store.read(b"r:1", head, lambda k: None)
    with pytest.raises(ValueError, match="malformed"):
        store.read(b"r:1", {"bounds": "x"}, lambda k: None)
    assert chunk_key(b"r:1", 2) != b"r:12" and is_chunk_key(chunk_key(b"r:1", 2))
    with pytest.raises(ValueError, match="at least 1"):
        RunnerStore(chunk=0)
