"""The Faust topology: thin adapters that decode, call the stages, encode.

    pings.v1, chip-reads.v1 ─┐
    <app>-runner-commands ───┴─► per-runner stage (6 partitions, table "runners"):
                                  runner-updates.v1, alerts.v1 (per runner, at once)
    control.v1 ─► router ───────────┐   │ runner summaries, command audits
                                    ▼   ▼
                      <app>-race-board (6 partitions, key race)
                                    ▼
                      per-race stage (tables "race-summaries", "races"), after each batch:
                      standings.v1, control-log.v1; <app>-race-settings ─► every worker

Everything about a runner is keyed ``race:bib``, so the per-runner topics are
co-partitioned and one worker owns a runner's fixes, chip reads, commands and table
entries; it owns every entrant whose key falls in its partitions, whether or not the
runner sent anything (a tracker that never connected still raises "no signal"). Races
are keyed by race, so many races spread over workers. Every worker reads the races'
settings (weather alerts, device reassignments) whole, for the alert rules of the
runners it owns.

Tables are written every ``--flush-ms`` for what changed, in steps (``Writes``), each
entry under the latest event of its partition. Input events are held unacknowledged
until the tables hold their effects, so the committed offsets never run ahead of the
stored state: after a crash, input is processed again from there, which changes
nothing twice (fixes are deduplicated by time, summaries are absolute values).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2
from faust.streams import _current_event
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from race_engine.engine import EngineInputError
from race_engine.model import Race
from race_engine.runner import Layout
from stream_processors import metrics as m
from stream_processors import summary_store, transport
from stream_processors.commands import CommandError, audit, check, decode_command
from stream_processors.race_stage import RaceStage
from stream_processors.race_stage import Timing as RaceTiming
from stream_processors.runner_stage import RunnerStage, Timing, UnknownRace
from stream_processors.settings import ProcessSettings
from stream_processors.store import is_chunk_key
from zegama_live import topics as t
from zegama_live.config import faust_brokers
from zegama_live.kafka_probe import KafkaProbe
from zegama_live.records import Codec, RecordError, decode_chip_read, decode_ping, to_builtins
from zegama_live.records.control import RUNNER_OPS, runner_of
from zegama_live.records.internal import CommandAudit, RaceCommand, RaceInput, RunnerSummaries

log = logging.getLogger("stream_processors")
RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes,
                       "key_serializer": "raw", "value_serializer": "raw"}
Event = faust.types.EventT


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (ingest's and ours)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@contextlib.contextmanager
def event_context(event: Event) -> Iterator[None]:
    """Make ``event`` the current one, so a table write lands in its partition's store.

    Faust's RocksDB store files a write under the current event's partition; a batch
    holds events of several partitions, so each entry is written under the latest event
    of its own partition. (``_current_event`` is Faust's private context variable: its
    only way to say which partition a write outside an agent's event belongs to.)
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def stored(value: Any) -> Any:
    """A table value (JSON bytes) as JSON data."""
    return None if value is None else orjson.loads(value)


class Held:
    """Input events whose effects are not in the tables yet.

    Each is given an extra reference, so the stream's own acknowledgement after the
    batch does not let its offset be committed; ``release`` acknowledges them once the
    tables are written. After a rebalance they are dropped unacknowledged: whoever owns
    the partitions now processes them again.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []

    def hold(self, event: Event) -> None:
        event.message.incref()
        self.events.append(event)

    def release(self, consumer: Any) -> None:
        for event in self.events:
            event.message.ack(consumer)
        self.events.clear()

    def drop(self) -> None:
        self.events.clear()

    def take(self) -> Held:
        """A Held of the events held so far; this one starts empty."""
        taken = Held()
        taken.events, self.events = self.events, []
        return taken


WRITE_STEP_S = 0.05
BOARD_SHARE = 0.2  # most of a worker's time building one race's boards


class Writes:
    """One round of table writes, spread over steps.

    Faust sends a table's changelog records through its producer buffer, and while that
    buffer holds more than ``max_messages`` (100) every input record waits for it to
    drain: writing 500 runners at once stalled input by 200-400 ms every flush. So a
    round is written a buffer's worth at a time. The input held when the round starts
    is acknowledged when the round ends: by then every runner it changed is written
    (with its state at the time of writing, which may include later input: that is
    held for the next round, and processing it again changes nothing).
    """

    def __init__(self) -> None:
        self.runners: dict[tuple[str, str], Event] = {}
        self.summaries: set[tuple[str, str]] = set()
        self.held_runners, self.held_races = Held(), Held()
        self.active = False
        self.started_at = 0.0

    def start(self, now: float, runners: dict[tuple[str, str], Event],
              summaries: set[tuple[str, str]], held_runners: Held,
              held_races: Held) -> None:
        self.runners, self.summaries = runners, summaries
        self.held_runners, self.held_races = held_runners.take(), held_races.take()
        self.active = True
        self.started_at = now

    def finish(self, consumer: Any) -> None:
        self.held_runners.release(consumer)
        self.held_races.release(consumer)
        self.active = False

    def drop(self) -> None:
        self.runners, self.summaries = {}, set()
        self.held_runners.drop()
        self.held_races.drop()
        self.active = False


class Topology:
    """The worker: its topics, tables and stages, and the agents that connect them."""

    def __init__(self, settings: ProcessSettings, races: Mapping[str, Race]) -> None:
        self.settings = settings
        self.races = dict(races)
        self.app = app = faust.App(
            settings.app_id,
            broker=faust_brokers(settings.kafka_bootstrap),
            store="rocksdb://",
            datadir=str(settings.data_dir),
            topic_partitions=6,
            topic_replication_factor=settings.replication_factor or 1,
            broker_commit_interval=settings.commit_interval_s,
            table_standby_replicas=settings.standby_replicas,
            producer_acks=-1,
            consumer_auto_offset_reset="earliest",
            web_enabled=True, web_host=settings.web_host, web_port=settings.web_port,
            web_bind=settings.web_host,
            # Only our /healthz and /metrics (and Faust's {"status": "OK"} index): its
            # table, router, graph and stats views would show anyone who reaches the
            # port the device -> bib map and raw fixes.
            web_tables_enabled=False, web_router_enabled=False, web_graph_enabled=False,
            web_stats_enabled=False, web_metrics_enabled=False,
            worker_redirect_stdouts=False,
            # A worker killed without leaving the group holds its partitions until the
            # session times out: keep that short so a restarted or surviving worker
            # takes over within seconds, not a minute.
            broker_session_timeout=6.0,
            broker_heartbeat_interval=1.5,
            # Held events are never acknowledged after a revocation: do not wait for
            # them, they are processed again by the partitions' next owner.
            stream_wait_empty=False,
            # A flush writes runner state in bulk; in 16 KB batches (the default) it took
            # dozens of acks=all round trips, and the outputs queued behind them.
            producer_max_batch_size=512 * 1024,
            # Cards, alerts and summaries go out as many small records: wait 5 ms to send
            # them in fewer requests (each acks=all round trip costs both ends CPU).
            producer_linger_ms=5,
        )
        transport.install(app, settings.fetch_wait_ms)
        self.runners = RunnerStage(races, Timing(
            tick_ms=settings.tick_ms, track_step_m=settings.track_step_m,
            card_ms=settings.card_every_ms, whole_ms=settings.whole_every_ms))
        self.race_timing = RaceTiming(snapshot_ms=round(settings.snapshot_every_s * 1000))
        self.stages: dict[str, RaceStage] = {}
        commands, board, race_settings = t.internal_topics(settings.app_id)[:3]
        self.board_partitions = board.partitions
        self.settings_topic = race_settings
        self.codecs: dict[str, Codec[Any]] = {commands.name: commands.codec,
                                              board.name: board.codec}
        self.inputs = app.topic(t.PINGS, t.CHIP_READS, **RAW)
        self.control = app.topic(t.CONTROL, **RAW)
        self.commands = app.topic(commands.name, partitions=commands.partitions,
                                  internal=True, **RAW)
        self.board = app.topic(board.name, partitions=board.partitions, internal=True, **RAW)
        declared = [t.BY_NAME[name] for name in
                    (t.STANDINGS, t.RUNNER_UPDATES, t.ALERTS, t.CONTROL_LOG)]
        self.outputs = {d.name: d.codec for d in (*declared, race_settings)}
        # Keys and values are bytes in the changelog (the schema) and in the local store
        # (the key and value types: without them Faust's store decodes keys as JSON, and
        # a worker that recovers a table from its changelog cannot read it back).
        table_args: dict[str, Any] = {"default": None, "schema": faust.Schema(**RAW),
                                      "key_type": bytes, "value_type": bytes}
        self.runner_table = app.Table("runners", partitions=6, **table_args)
        self.summary_table = app.Table("race-summaries", partitions=board.partitions,
                                       **table_args)
        self.race_table = app.Table("races", partitions=board.partitions, **table_args)
        self.held_runners, self.held_races = Held(), Held()
        self.writes = Writes()
        self.publishing = asyncio.Lock()
        self.race_locks: dict[str, asyncio.Lock] = {}
        self.race_published: dict[str, int] = {}  # wall ms of each race's latest round
        self.race_gap: dict[str, int] = {}  # ms from a race's round to its next
        self.runner_events: dict[tuple[str, str], Event] = {}  # latest event per runner
        self.race_events: dict[str, Event] = {}  # latest event per race
        self.summaries_dirty: set[tuple[str, str]] = set()
        self.claims: set[tuple[str, str]] = set()  # owned runners not taken over yet
        self.offsets: dict[TP, int] = {}
        self.probe = KafkaProbe(settings.kafka_bootstrap)
        self.newest_input_s: float | None = None  # Kafka timestamp of the newest event read
        self.assigned_at = time.monotonic()
        self.fresh_from = 0  # events fetched in an earlier generation are stale
        self.stale_logged = -1
        self._wire()

    def _wire(self) -> None:
        app, s = self.app, self.settings
        app.agent(self.inputs, name="per_runner")(self.per_runner)
        app.agent(self.commands, name="per_runner_commands")(self.per_runner_commands)
        app.agent(self.control, name="router")(self.router)
        app.agent(self.board, name="per_race")(self.per_race)
        app.timer(s.publish_ms / 1000.0, name="publish")(self.publish)
        app.timer(WRITE_STEP_S, name="flush")(self.flush)
        app.timer(5.0, name="gauges")(self.gauges)
        app.task(self.follow_settings)
        app.task(self.probe.run)
        app.on_partitions_revoked.connect(self.on_revoked)
        app.on_rebalance_complete.connect(self.on_rebalanced)
        # Faust calls a page with its view and the request: plain functions, not methods.
        app.page("/metrics")(metrics_page)
        health = self.health

        async def healthz(web: Any, request: Any) -> Any:
            state = health()
            return web.json(state, status=200 if state["status"] == "ok" else 503,
                            headers={"Cache-Control": "no-store"})

        app.page("/healthz")(healthz)

    # ---------------------------------------------------------------- helpers

    def current(self, ev: Event) -> bool:
        """False for an event fetched before the latest rebalance (a batch being filled
        when partitions were revoked): its runner may be another worker's now. It is
        never acknowledged: the partitions' owner reads it again."""
        gen = ev.message.generation_id
        if gen is None or gen >= self.fresh_from:
            return True
        ev.message.incref()
        m.STALE.labels(ev.message.topic).inc()
        if self.stale_logged != gen:
            self.stale_logged = gen
            log.info("skipping events fetched in generation %d, before the rebalance "
                     "(from %s@%d offset %d on)", gen, ev.message.topic,
                     ev.message.partition, ev.message.offset)
        return False

    def seen(self, ev: Event) -> None:
        msg = ev.message
        self.offsets[TP(msg.topic, msg.partition)] = msg.offset
        if msg.timestamp and msg.timestamp > (self.newest_input_s or 0.0):
            self.newest_input_s = msg.timestamp
        m.EVENTS.labels(msg.topic).inc()

    def decoded(self, ev: Event) -> Any:
        """The event's record, or None when it is not one of its topic's (counted)."""
        try:
            return self.codecs[ev.message.topic].decode(ev.value)
        except RecordError as e:
            m.REJECTED.labels(ev.message.topic, "bad_record").inc()
            log.warning("skipped a record: %s", e)
            return None

    def ensure(self, race: str, bib: str) -> None:
        """Take a runner over from the table unless this worker holds it already.

        Raises:
            UnknownRace, EngineInputError: unknown race or bib, unreadable state.
        """
        if self.runners.owns(race, bib):
            return
        key = f"{race}:{bib}".encode()
        try:
            state = self.runners.store.read(key, stored(self.runner_table.get(key)),
                                            lambda k: stored(self.runner_table.get(k)))
        except ValueError as e:
            raise EngineInputError(str(e)) from None
        self.runners.take_over(race, bib, state)
        self.claims.discard((race, bib))

    async def produce(self, topic: str, key: bytes, value: bytes) -> None:
        """Hand a record to the producer (Faust's producer API, not a topic's ``send``:
        the topic's message and callback machinery cost more than the record itself,
        and a publish round sends hundreds). Kafka's default partitioner places it, as
        for every other producer of these topics."""
        await self.app.producer.send(topic, key, value, None, None, None)

    async def send(self, topic: str, key: str, value: Any) -> None:
        await self.produce(topic, key.encode(), self.outputs[topic].encode(value))
        m.PUBLISHED.labels(topic).inc()

    async def to_race(self, msg: RaceInput) -> None:
        name = self.board.get_topic_name()
        await self.produce(name, msg.race.encode(), self.codecs[name].encode(msg))

    async def publish_runners(self, now: int, full: bool = False) -> None:
        # One round at a time: a round's summaries must reach the race-board topic before
        # the next round's (a tail sent ahead of the whole curve it extends would not fit).
        async with self.publishing:
            records, summaries = self.runners.publish(now, full)
            for topic, key, value in records:
                await self.send(topic, key, value)
            for summary in summaries:
                await self.to_race(summary)

    # ----------------------------------------------------------------- agents

    async def per_runner(self, stream: faust.StreamT[bytes]) -> None:
        within = self.settings.batch_within_ms / 1000.0
        async for events in stream.take_events(self.settings.batch_max, within):
            started = time.perf_counter()
            now = wall_ms()
            for ev in events:
                if self.current(ev):
                    self.on_input(ev, now)
            await self.publish_runners(now)
            m.BATCH.observe(time.perf_counter() - started)

    def on_input(self, ev: Event, now: int) -> None:
        self.seen(ev)
        self.held_runners.hold(ev)
        topic = ev.message.topic
        try:
            if topic == t.PINGS:
                rec = decode_ping(ev.value)
                race, bib = rec.race, rec.bib
                self.ensure(race, bib)
                self.runners.on_ping(rec, now)
                m.FIX_LAG.observe(max(0.0, (now - rec.fix.t) / 1000.0))
            else:
                chip = decode_chip_read(ev.value)
                race, bib = chip.race, chip.read.bib
                self.ensure(race, bib)
                self.runners.on_chip_read(chip, now)
            self.runner_events[(race, bib)] = ev
        except (RecordError, UnknownRace, EngineInputError) as e:
            m.REJECTED.labels(topic, type(e).__name__).inc()
            log.debug("skipped a %s record: %s", topic, e)

    async def per_runner_commands(self, stream: faust.StreamT[bytes]) -> None:
        async for ev in stream.events():
            if not self.current(ev):
                continue
            self.seen(ev)
            self.held_runners.hold(ev)
            rec = self.decoded(ev)
            if rec is None:
                continue
            cmd = to_builtins(rec)
            bib = runner_of(cmd)
            try:
                self.ensure(rec.race, str(bib))
            except (UnknownRace, EngineInputError) as e:
                result: tuple[str, str | None] = ("rejected", str(e))
            else:
                result = self.runners.on_command(cmd, wall_ms())
                self.runner_events[(rec.race, str(bib))] = ev
            await self.publish_runners(wall_ms())
            await self.to_race(CommandAudit(race=rec.race, entry=audit(
                cmd, *result, wall_ms())))

    async def router(self, stream: faust.StreamT[bytes]) -> None:
        async for ev in stream.events():
            self.seen(ev)
            try:
                cmd = decode_command(ev.value, ev.key, set(self.races))
            except CommandError as e:
                m.REJECTED.labels(t.CONTROL, "bad_command").inc()
                log.warning("control command skipped: %s", e)
                continue
            race = cmd["race"]
            problem = check(cmd)
            bib = runner_of(cmd) if cmd["op"] in RUNNER_OPS else None
            if problem is None and cmd["op"] in RUNNER_OPS and bib is None:
                problem = f"alert id {cmd.get('alert_id')!r} names no runner of race {race}"
            if problem is not None:  # routable but malformed: audited as rejected
                m.REJECTED.labels(t.CONTROL, "bad_command").inc()
                await self.to_race(CommandAudit(race=race, entry=audit(
                    cmd, "rejected", problem, wall_ms())))
            elif bib is not None:
                await self.commands.send(key=f"{race}:{bib}".encode(), value=ev.value)
            else:
                await self.to_race(RaceCommand(race=race, command=cmd))

    async def per_race(self, stream: faust.StreamT[bytes]) -> None:
        within = self.settings.batch_within_ms / 1000.0
        async for events in stream.take_events(self.settings.batch_max, within):
            now = wall_ms()
            touched: set[str] = set()
            for ev in events:
                if not self.current(ev):
                    continue
                self.seen(ev)
                self.held_races.hold(ev)
                msg = self.decoded(ev)
                stage = None if msg is None else self.stage_for(msg.race)
                if stage is None:
                    if msg is not None:
                        m.REJECTED.labels(ev.message.topic, "unknown_race").inc()
                    continue
                self.race_events[stage.race.id] = ev
                touched.add(stage.race.id)
                try:
                    self.on_race_input(stage, msg, now)
                except EngineInputError as e:
                    m.REJECTED.labels(ev.message.topic, "bad_summary").inc()
                    log.warning("race input skipped: %s", e)
            # Publish at once rather than at the next timer round, unless the race had a
            # round less than --publish-ms ago (then the timer's next round carries it).
            for race in sorted(touched):
                if self.race_due(race, now):
                    await self.publish_race(race)

    def on_race_input(self, stage: RaceStage, msg: RaceInput, now: int) -> None:
        if isinstance(msg, RunnerSummaries):
            for summary in msg.runners:
                try:
                    stage.on_summary(summary)
                except EngineInputError as e:  # one bad summary must not hide the others
                    m.REJECTED.labels(self.board.get_topic_name(), "bad_summary").inc()
                    log.warning("race %s: summary skipped: %s", msg.race, e)
                    continue
                self.summaries_dirty.add((msg.race, summary.bib))
        elif isinstance(msg, RaceCommand):
            stage.on_audit(audit(msg.command, *stage.on_command(msg.command, now), now))
        elif isinstance(msg, CommandAudit):
            stage.on_audit(msg.entry)

    def stage_for(self, race: str) -> RaceStage | None:
        """The race's stage, rebuilt from the tables the first time after a rebalance."""
        stage = self.stages.get(race)
        if stage is not None or race not in self.races:
            return stage
        prefix = f"{race}:".encode()
        saved = {k: stored(v) for k, v in self.summary_table.items()
                 if k.startswith(prefix) and v is not None}
        summaries = []
        layout = Layout.from_race(self.races[race])
        for key, head in saved.items():
            if is_chunk_key(key):
                continue
            try:
                summaries.append(summary_store.read(head, key, layout, saved.get))
            except ValueError as e:
                log.error("race %s: a stored summary is unreadable; the runner's next "
                          "whole summary mends it: %s", race, e)
        stage = RaceStage.restore(self.races[race], stored(self.race_table.get(race.encode())),
                                  summaries, self.race_timing)
        self.stages[race] = stage
        log.info("race %s: took over with %d runners", race, len(summaries))
        return stage

    # ----------------------------------------------------------------- timers

    def recovering(self) -> bool:
        return bool(self.app.rebalancing or getattr(self.app, "in_recovery", False))

    def owns_race(self, race: str) -> bool:
        tp = TP(self.board.get_topic_name(), partition_of(race.encode(), self.board_partitions))
        return tp in self.app.assignor.assigned_actives()

    async def publish(self) -> None:
        """Take over the owned runners not seen yet, publish what is due: the runners'
        cards and alerts, the races' standings, audits and settings."""
        if self.recovering():
            return
        for race, bib in sorted(self.claims):
            try:
                self.ensure(race, bib)
            except (UnknownRace, EngineInputError) as e:
                self.claims.discard((race, bib))
                log.error("runner %s:%s is unreadable: %s", race, bib, e)
        await self.publish_runners(wall_ms(), full=True)
        for race in self.races:
            if self.owns_race(race) and self.race_due(race, wall_ms()):
                await self.publish_race(race)

    def race_due(self, race: str, now: int) -> bool:
        """Whether the race's next round is due: ``--publish-ms`` after its latest, and
        at least ``BOARD_SHARE`` of the time between rounds left to other work (a big
        field's board takes longer to build: it is then published less often)."""
        return now - self.race_published.get(race, 0) >= self.race_gap.get(
            race, self.settings.publish_ms)

    async def publish_race(self, race: str) -> None:
        """The race's standings, audits and settings that are due, once a stage holds it.
        One round per race at a time, so its records go out in sequence order."""
        stage = self.stage_for(race)
        if stage is None:
            return
        async with self.race_locks.setdefault(race, asyncio.Lock()):
            started = time.perf_counter()
            now = wall_ms()
            self.race_published[race] = now
            try:
                records = stage.publish(now)
                settings = stage.settings(now)
            except Exception:  # one bad round must not stop the worker or other races
                log.exception("race %s: publish round failed; the next round retries", race)
                return
            self.race_gap[race] = max(self.settings.publish_ms, round(
                (time.perf_counter() - started) * 1000 / BOARD_SHARE))
            for topic, key, value in records:
                await self.send(topic, key, value)
            if settings is not None:
                await self.send(self.settings_topic.name, race, settings)
            ev = self.race_events.get(race)
            if not stage.saved and ev is not None:
                with event_context(ev):
                    self.race_table[race.encode()] = orjson.dumps(stage.meta())
                stage.saved = True
            m.PUBLISH.observe(time.perf_counter() - started)

    async def flush(self) -> None:
        """Every ``--flush-ms``, start writing what changed to the tables; a step every
        ``WRITE_STEP_S`` writes as much as Faust's producer buffer takes without
        stalling input (``Writes``); when all is written, the input the writes cover is
        acknowledged. No await inside a step: the agents cannot change state half-way
        through one."""
        if self.app.rebalancing:
            return
        now = time.monotonic()
        if not self.writes.active and now - self.writes.started_at >= \
                self.settings.flush_ms / 1000.0:
            self.writes.start(now, self.runner_events, self.summaries_dirty,
                              self.held_runners, self.held_races)
            self.runner_events, self.summaries_dirty = {}, set()
        if not self.writes.active:
            return
        started = time.perf_counter()
        buffer = self.app.producer.buffer
        budget = int(buffer.max_messages * 0.8) - buffer.size
        written = 0
        while budget > 0 and self.writes.runners:
            (race, bib), ev = self.writes.runners.popitem()
            if self.runners.owns(race, bib):
                with event_context(ev):
                    for k, v in self.runners.writes(race, bib):
                        self.runner_table[k] = v
                        written += len(v)
                        budget -= 1
        while budget > 0 and self.writes.summaries:
            race, bib = self.writes.summaries.pop()
            stage, ev = self.stages.get(race), self.race_events.get(race)
            if stage is None or ev is None or bib not in stage.summaries:
                continue
            key = f"{race}:{bib}".encode()
            with event_context(ev):
                for k, v in summary_store.writes(key, stage.summaries[bib],
                                                 stage.changed_from.pop(bib, 0)):
                    self.summary_table[k] = v
                    written += len(v)
                    budget -= 1
        if not self.writes.runners and not self.writes.summaries:
            self.writes.finish(self.app.consumer)
            m.FLUSH.observe(now - self.writes.started_at)
        m.FLUSH_STEP.observe(time.perf_counter() - started)
        m.FLUSH_BYTES.inc(written)

    async def gauges(self) -> None:
        for tp, offset in list(self.offsets.items()):
            with contextlib.suppress(Exception):
                m.CONSUMER_LAG.labels(tp.topic).set(
                    max(0, self.app.consumer.highwater(tp) - offset - 1))
        m.TABLE_KEYS.labels("runners").set(len(self.runners.owned()))
        m.TABLE_KEYS.labels("race-summaries").set(
            sum(len(s.summaries) for s in self.stages.values()))
        m.TORN.set(sum(s.torn for s in self.stages.values()))
        m.ALERTS_OPEN.clear()
        for race, engine in self.runners.engines.items():
            for a in engine.alerts():
                m.ALERTS_OPEN.labels(race, a["kind"]).inc()

    # --------------------------------------------------------------- settings

    async def follow_settings(self) -> None:
        """Read every race's settings (the compacted settings topic, whole, without a
        consumer group) and hand them to the runner stage, for as long as the worker
        runs."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap,
                                    group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([TopicPartition(self.settings_topic.name, p)
                             for p in range(self.settings_topic.partitions)])
            codec = self.settings_topic.codec
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                for msgs in batch.values():
                    for msg in msgs:
                        try:
                            self.runners.on_settings(codec.decode(msg.value or b""))
                        except RecordError as e:
                            m.REJECTED.labels(self.settings_topic.name, "bad_record").inc()
                            log.warning("skipped race settings: %s", e)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(consumer.stop())

    # -------------------------------------------------------------- rebalance

    async def on_revoked(self, sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        # Another worker may own these runners or the races now: re-read state from
        # the tables when they come back rather than trusting what is in memory, and
        # leave what was not written to be processed again from the committed offsets.
        self.fresh_from = self.app.consumer_generation_id + 1
        self.runners.forget()
        self.stages.clear()
        self.race_published.clear()
        self.runner_events.clear()
        self.summaries_dirty.clear()
        self.claims.clear()
        self.held_runners.drop()
        self.held_races.drop()
        self.writes.drop()
        self.assigned_at = time.monotonic()

    async def on_rebalanced(self, sender: Any, **kwargs: Any) -> None:
        mine = {tp.partition for tp in self.app.assignor.assigned_actives()
                if tp.topic == t.PINGS}
        n = t.BY_NAME[t.PINGS].partitions
        self.claims = {(rid, e.bib) for rid, race in self.races.items()
                       for e in race.entrants
                       if partition_of(f"{rid}:{e.bib}".encode(), n) in mine}
        m.RECOVERY.set(time.monotonic() - self.assigned_at)

    # ------------------------------------------------------------------- web

    def health(self) -> dict[str, Any]:
        pings = sorted(tp.partition for tp in self.app.assignor.assigned_actives()
                       if tp.topic == t.PINGS)
        kafka = self.probe.state()
        newest = self.newest_input_s
        return {"status": "kafka_unreachable" if kafka["kafka"] == "down" else "ok", **kafka,
                "newest_input_age_s": None if newest is None else round(time.time() - newest, 1),
                "races": sorted(self.races),
                "owns_races": sorted(r for r in self.races if self.owns_race(r)),
                "rebalancing": bool(self.app.rebalancing), "pings_partitions": pings}


async def metrics_page(web: Any, request: Any) -> Any:
    # aiohttp refuses a charset inside content_type; Prometheus reads text/plain.
    return web.bytes(generate_latest(m.REGISTRY), content_type="text/plain",
                     headers={"X-Prometheus-Format": CONTENT_TYPE_LATEST})


def build_app(settings: ProcessSettings, races: Mapping[str, Race]) -> faust.App:
    """The worker's Faust app for ``races`` (race id -> race)."""
    return Topology(settings, races).app
