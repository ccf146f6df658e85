"""Rebuilding the views from Kafka: the latest standings snapshot found by reading
backwards, the compacted topics from the beginning, duplicates skipped, and several
broadcasters side by side with no consumer group."""

from __future__ import annotations

import asyncio
from itertools import islice

import pytest
from broadcast_kafka import produce, producer, unique_race
from broadcast_records import RaceRecords

import broadcast.follower
from broadcast.follower import Follower
from broadcast.views import RaceView
from zegama_live.topics import RUNNER_UPDATES, STANDINGS

pytestmark = pytest.mark.integration


async def follow(bootstrap: str, rr: RaceRecords) -> tuple[Follower, RaceView]:
    view = RaceView(rr.race)
    follower = Follower(bootstrap, {rr.race.id: view})
    await follower.start()
    await asyncio.wait_for(follower.caught_up.wait(), 30)
    return follower, view


async def test_rebuild_starts_at_the_latest_snapshot(kafka_bootstrap, tmp_path,  # type: ignore[no-untyped-def]
                                                     monkeypatch) -> None:
    monkeypatch.setattr(broadcast.follower, "SCAN_STEP", 4)  # several steps backwards
    rr = RaceRecords(unique_race(tmp_path), snapshot_every=15)
    records = [rec for tick in islice(rr.run(), 40) for rec in tick]
    async with producer(kafka_bootstrap) as p:
        await produce(p, records)
    follower, view = await follow(kafka_bootstrap, rr)
    try:
        standings = [r for t, _, r in records if t == STANDINGS]
        latest = max(i for i, r in enumerate(standings) if r["type"] == "snapshot")
        assert latest > 0 and view.board.board == rr.board
        assert view.board.seq == standings[-1]["seq"]
        # Started at the latest snapshot: nothing older was read, so nothing was skipped.
        assert view.board.skipped == 0
        applied = follower.records - sum(1 for t, _, _ in records if t != STANDINGS)
        assert applied == len(standings) - latest
        latest_cards = {r["bib"]: r["card"] for t, _, r in records if t == RUNNER_UPDATES}
        assert {b: h["card"] for b, h in view.runners.items()} == latest_cards
    finally:
        await follower.stop()


async def test_duplicates_are_skipped_and_two_followers_agree(kafka_bootstrap, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rr = RaceRecords(unique_race(tmp_path))
    records = [rec for tick in islice(rr.run(), 30) for rec in tick]
    async with producer(kafka_bootstrap) as p:
        await produce(p, records + records[-10:])  # a redelivered tail
    (fa, va), (fb, vb) = await follow(kafka_bootstrap, rr), await follow(kafka_bootstrap, rr)
    try:
        for view in (va, vb):
            assert view.board.board == rr.board
            assert view.duplicates + view.board.skipped >= 10
        assert va.runners == vb.runners and va.alerts == vb.alerts
        assert fa.lag() == 0
    finally:
        await fa.stop()
        await fb.stop()
