"""The live processors against the real broker: same splits as replay, crash recovery,
scale-out, control commands."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from processor_harness import (
    Worker,
    latest_board,
    produce,
    read_all,
    sim_pings,
    wait_for,
)

from race_engine.racefolder import load_race
from race_engine.replay import final_splits, replay
from zegama_live.topics import PINGS, STANDINGS

pytestmark = pytest.mark.integration
RACE_DIR = Path(__file__).resolve().parents[2] / "races" / "zegama-2026"
RUNNERS = 12


@pytest.fixture(scope="module")
def race():  # type: ignore[no-untyped-def]
    return load_race(RACE_DIR)


@pytest.fixture(scope="module")
def pings(race):  # type: ignore[no-untyped-def]
    return sim_pings(race, RUNNERS)


@pytest.fixture(scope="module")
def expected(race, pings) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return replay(race, [line for _, _, line in pings]).splits


def app_id(name: str) -> str:
    return f"test-{name}-{time.time_ns()}"


async def live_splits(bootstrap: str, race_id: str, want: int) -> list[dict[str, Any]]:
    """Wait until the published board has ``want`` splits (and holds still), return them."""
    last: list[list[dict[str, Any]]] = []

    async def settled() -> list[dict[str, Any]] | None:
        board = latest_board(await read_all(bootstrap, STANDINGS), race_id)
        splits = [] if board is None else final_splits(board)
        done = len(splits) >= want and last and splits == last[-1]
        last.append(splits)
        return splits if done else None

    return await wait_for(settled, 120, f"{want} splits on standings.v1")


async def test_live_splits_equal_replay(kafka_bootstrap, race, pings, expected, tmp_path):  # type: ignore[no-untyped-def]
    worker = Worker(kafka_bootstrap, str(RACE_DIR), tmp_path / "w1", app_id("replay"),
                    tmp_path / "w1.log").start()
    try:
        await produce(kafka_bootstrap, PINGS, [(k, v) for k, v, _ in pings])
        got = await live_splits(kafka_bootstrap, race.id, len(expected))
    finally:
        worker.stop()
    assert len(expected) > RUNNERS * 5
    assert got == expected
