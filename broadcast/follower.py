"""Follow the processors' output topics in Kafka and feed the race views.

On start the views are rebuilt: standings from each race's latest snapshot (found by
reading ``standings.v1`` backwards from its end), ``runner-updates.v1``, ``alerts.v1``
and ``control-log.v1`` from their beginning (compacted: the latest record per key).
Then the follower keeps reading. It uses no consumer group and commits nothing: every
broadcaster reads everything, so any number of them can run side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from broadcast.views import RaceView
from zegama_live.records import RecordError, to_builtins
from zegama_live.topics import ALERTS, BY_NAME, CONTROL_LOG, RUNNER_UPDATES, STANDINGS

log = logging.getLogger("broadcast.follower")
FOLLOWED = (STANDINGS, RUNNER_UPDATES, ALERTS, CONTROL_LOG)
SCAN_STEP = 500  # standings records read per step backwards
# A race without a snapshot among the latest SCAN_LIMIT standings records (one not
# started yet, or not published for a long time) waits for its next snapshot rather
# than making every start read a whole race day of other races' records.
SCAN_LIMIT = 50_000


class Follower:
    """One Kafka consumer applying every record of the followed topics to the views."""

    def __init__(self, bootstrap: str, views: dict[str, RaceView],
                 on_record: Callable[[], None] | None = None) -> None:
        self.bootstrap = bootstrap
        self.views = views
        self.on_record = on_record or (lambda: None)
        self.consumer: AIOKafkaConsumer | None = None
        self.caught_up = asyncio.Event()
        self.records = 0
        self.bad_records = 0
        # Kafka timestamps (ms) of the newest record of each served race's standings and
        # of any followed record: how old the board is, even just after a restart.
        self.standings_ms: dict[str, int] = {}
        self.newest_ms: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._ends: dict[TopicPartition, int] = {}
        self._pos: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        """Connect, position every partition for the rebuild, start following.

        Raises KafkaError (from aiokafka) when the broker cannot be reached.
        """
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        self.consumer = consumer
        try:
            tps = []
            for topic in FOLLOWED:
                parts = consumer.partitions_for_topic(topic) or await self._partitions(topic)
                tps += [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            self._ends = await consumer.end_offsets(tps)
            for tp in tps:
                if tp.topic == STANDINGS:
                    consumer.seek(tp, await self._latest_snapshots(tp))
                else:
                    await consumer.seek_to_beginning(tp)
        except BaseException:
            await consumer.stop()
            raise
        self._task = asyncio.create_task(self._follow(), name="broadcast-follower")

    async def _partitions(self, topic: str) -> set[int]:
        assert self.consumer is not None
        for _ in range(20):  # a topic just created takes a moment to show in the metadata
            cluster = await self.consumer._client.fetch_all_metadata()
            parts = cluster.partitions_for_topic(topic)
            if parts:
                return set(parts)
            await asyncio.sleep(0.25)
        raise RuntimeError(f"topic {topic} does not exist: create the topics with "
                           "'zegama-live kafka start' or 'zegama-live topics create'")

    async def _latest_snapshots(self, tp: TopicPartition) -> int:
        """The offset to start ``standings.v1`` at: the oldest of the races' latest snapshots."""
        assert self.consumer is not None
        begin = (await self.consumer.beginning_offsets([tp]))[tp]
        end = self._ends[tp]
        found: dict[str, int] = {}
        hi = end
        while hi > begin and len(found) < len(self.views) and end - hi < SCAN_LIMIT:
            lo = max(begin, hi - SCAN_STEP)
            for offset, race in await self._snapshots_between(tp, lo, hi):
                if race not in found or offset > found[race]:
                    found[race] = offset
            hi = lo
        if not found:
            return end
        return min(found.values())

    async def _snapshots_between(self, tp: TopicPartition, lo: int,
                                 hi: int) -> list[tuple[int, str]]:
        """(offset, race) of the standings snapshots of served races within [lo, hi)."""
        assert self.consumer is not None
        self.consumer.seek(tp, lo)
        out: list[tuple[int, str]] = []
        pos = lo
        while pos < hi:
            batch = await self.consumer.getmany(tp, timeout_ms=1000)
            msgs = batch.get(tp, [])
            if not msgs:
                pos = await self.consumer.position(tp)
                if pos >= hi:
                    break
                continue
            for msg in msgs:
                if msg.offset >= hi:
                    break
                pos = msg.offset + 1
                if b'"snapshot"' in (msg.value or b""):  # skip decoding updates
                    rec = _decode(STANDINGS, msg.value)
                    if rec and rec.get("type") == "snapshot" and rec.get("race") in self.views:
                        out.append((msg.offset, rec["race"]))
        return out

    async def _follow(self) -> None:
        assert self.consumer is not None
        while True:
            try:
                batch = await self.consumer.getmany(timeout_ms=200, max_records=5000)
            except asyncio.CancelledError:
                raise
            except Exception:  # a broker restart: aiokafka reconnects by itself
                log.exception("reading Kafka failed; retrying")
                await asyncio.sleep(1.0)
                continue
            for tp, msgs in batch.items():
                for msg in msgs:
                    self._apply(tp.topic, msg.value, msg.timestamp)
                self._pos[tp] = msgs[-1].offset + 1
            if batch:
                self.on_record()
            if not self.caught_up.is_set() and await self._at_ends():
                self.caught_up.set()
                log.info("rebuilt the views of %s from Kafka", ", ".join(sorted(self.views)))

    def _apply(self, topic: str, value: bytes | None, timestamp_ms: int = 0) -> None:
        rec = _decode(topic, value)
        if rec is None:
            self.bad_records += 1
            return
        race = str(rec.get("race"))
        view = self.views.get(race)
        if view is None:  # another race's record
            return
        if timestamp_ms > (self.newest_ms or 0):
            self.newest_ms = timestamp_ms
        if topic == STANDINGS and timestamp_ms > self.standings_ms.get(race, 0):
            self.standings_ms[race] = timestamp_ms
        try:
            view.apply(topic, rec)
            self.records += 1
        except (ValueError, KeyError, TypeError) as exc:
            self.bad_records += 1
            log.warning("skipped a %s record of %s: %s", topic, rec.get("race"), exc)

    async def _at_ends(self) -> bool:
        assert self.consumer is not None
        for tp, end in self._ends.items():
            if await self.consumer.position(tp) < end:
                return False
        return True

    def stale(self, now_ms: int, after_ms: int) -> dict[str, int]:
        """Races whose newest standings record is older than ``after_ms``, with its age
        in seconds. The processors publish a snapshot every few seconds even when nothing
        changes, so a silent board means they or Kafka are away. A race never published
        (not started) is not stale."""
        return {race: (now_ms - ms) // 1000 for race, ms in sorted(self.standings_ms.items())
                if now_ms - ms > after_ms}

    def lag(self) -> int:
        """Records not read yet, over every followed partition (0 before the first fetch)."""
        if self.consumer is None:
            return 0
        total = 0
        for tp, pos in self._pos.items():
            high = self.consumer.highwater(tp)
            if high is not None:
                total += max(0, high - pos)
        return total

    async def stop(self) -> None:
        """Stop following and close the consumer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.consumer is not None:
            await self.consumer.stop()


def _decode(topic: str, value: bytes | None) -> dict[str, Any] | None:
    """The record as JSON data, checked by its topic's codec; None when it is not one."""
    try:
        rec: dict[str, Any] = to_builtins(BY_NAME[topic].codec.decode(value or b""))
    except RecordError as exc:
        log.debug("skipped a %s record: %s", topic, exc)
        return None
    return rec
