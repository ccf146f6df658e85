"""The Faust topology: thin adapters that decode, call the stages, encode.

    pings.v1, chip-reads.v1 ─┐
    <app>-runner-commands ───┴─► per-runner stage (6 partitions, table "runners")
                                     │ runner journals, command results, syncs
    control.v1 ─► router ────────────┼─► <app>-race-inputs (1 partition, key race)
                                     ▼
                      per-race stage (tables "race-runners", "races"), on a timer:
                      standings.v1, runner-updates.v1, alerts.v1, control-log.v1

Everything about a runner is keyed ``race:bib``, so the per-runner topics are
co-partitioned and one worker owns a runner's fixes, chip reads, commands and table
entries. After each batch the per-runner stage sends the runners' new journal entries
(one record per race), never whole tracks; the per-race stage replays them.

Tables are written every ``--flush-ms`` for the runners that changed, in parts (the
store module), each under the runner's latest event so it lands in the runner's
partition. Input events are held unacknowledged until the tables hold their effects, so
the committed offsets never run ahead of the stored state: after a crash, input is
processed again from there, which changes nothing twice (fixes are deduplicated by
time, journal entries by number).
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import faust
import orjson
from faust.streams import _current_event
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from race_engine.engine import EngineInputError
from race_engine.model import Race
from stream_processors import metrics as m
from stream_processors.commands import (
    CommandError,
    audit,
    check,
    decode_command,
    is_runner_command,
)
from stream_processors.race_stage import RaceStage, Timing
from stream_processors.runner_stage import RunnerStage, UnknownRace
from stream_processors.settings import ProcessSettings
from stream_processors.store import RunnerStore, is_chunk_key
from zegama_live import topics as t
from zegama_live.records import Codec, RecordError, decode_chip_read, decode_ping, to_builtins
from zegama_live.records.control import Resync
from zegama_live.records.internal import (
    CommandAudit,
    JournalBatch,
    RaceCommand,
    RaceInput,
    RunnerSync,
)

log = logging.getLogger("stream_processors")
RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes,
                       "key_serializer": "raw", "value_serializer": "raw"}


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@contextlib.contextmanager
def event_context(event: faust.types.EventT) -> Iterator[None]:
    """Make ``event`` the current one, so a table write lands in its partition's store.

    Faust's RocksDB store files a write under the current event's partition; a batch
    holds events of several partitions, so each runner's entry is written under the
    runner's own latest event.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def stored(value: Any) -> Any:
    """A table value (JSON bytes) as JSON data."""
    return None if value is None else orjson.loads(value)


def decoded(codec: Codec[Any], event: faust.types.EventT) -> Any:
    """The event's record, or None when it is not one of its topic's (counted, logged)."""
    try:
        return codec.decode(event.value)
    except RecordError as e:
        m.REJECTED.labels(event.message.topic, "bad_record").inc()
        log.warning("skipped a record: %s", e)
        return None


def _key(k: Any) -> bytes:
    return k if isinstance(k, bytes) else str(k).encode()


class Held:
    """Input events whose effects are not in the tables yet.

    Each is given an extra reference, so the stream's own acknowledgement after the
    batch does not let its offset be committed; ``release`` acknowledges them once the
    tables are written. After a rebalance they are dropped unacknowledged: whoever owns
    the partitions now processes them again.
    """

    def __init__(self) -> None:
        self.events: list[faust.types.EventT] = []

    def hold(self, event: faust.types.EventT) -> None:
        event.message.incref()
        self.events.append(event)

    def release(self, consumer: Any) -> None:
        for event in self.events:
            event.message.ack(consumer)
        self.events.clear()

    def drop(self) -> None:
        self.events.clear()


def build_app(settings: ProcessSettings, races: Mapping[str, Race]) -> faust.App:
    """The worker's Faust app for ``races`` (race id -> race)."""
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="rocksdb://",
        datadir=str(settings.data_dir),
        topic_partitions=6,
        topic_replication_factor=1,
        broker_commit_interval=settings.commit_interval_s,
        table_standby_replicas=settings.standby_replicas,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        web_enabled=True, web_host=settings.web_host, web_port=settings.web_port,
        web_bind=settings.web_host,
        worker_redirect_stdouts=False,
        # A worker killed without leaving the group holds its partitions until the
        # session times out: keep that short so a restarted or surviving worker takes
        # over within seconds, not a minute.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        # Held events (see Held) are never acknowledged after a revocation: do not
        # wait for them, they are processed again by the partitions' next owner.
        stream_wait_empty=False,
        # A flush writes a few MB of runner state at once; in 16 KB batches (the default)
        # it took dozens of acks=all round trips, and the journal and standings records
        # queued behind them.
        producer_max_batch_size=512 * 1024,
    )
    within = settings.batch_within_ms / 1000.0
    timing = Timing(snapshot_ms=round(settings.snapshot_every_s * 1000),
                    tick_ms=settings.tick_ms, track_step_m=settings.track_step_m,
                    card_ms=settings.card_every_ms)
    inputs = app.topic(t.PINGS, t.CHIP_READS, **RAW)
    commands_topic, race_topic = t.internal_topics(settings.app_id)[:2]
    commands_codec, race_codec = commands_topic.codec, race_topic.codec
    runner_commands = app.topic(commands_topic.name, partitions=commands_topic.partitions,
                                internal=True, **RAW)
    race_inputs = app.topic(race_topic.name, partitions=race_topic.partitions,
                            internal=True, **RAW)
    control = app.topic(t.CONTROL, **RAW)
    outputs = {name: app.topic(name, **RAW) for name in
               (t.STANDINGS, t.RUNNER_UPDATES, t.ALERTS, t.CONTROL_LOG)}
    # Keys and values are bytes in the changelog (the schema) and in the local store
    # (the key and value types: without them Faust's store decodes keys as JSON, and a
    # worker that recovers a table from its changelog cannot read it back).
    table_args: dict[str, Any] = {"default": None, "schema": faust.Schema(**RAW),
                                  "key_type": bytes, "value_type": bytes}
    runners_table = app.Table("runners", partitions=6, **table_args)
    race_runners = app.Table("race-runners", partitions=1, **table_args)
    races_table = app.Table("races", partitions=1, **table_args)
    runner_stage = RunnerStage(races)
    runner_store, race_store = RunnerStore(), RunnerStore()
    held_runners, held_races = Held(), Held()
    # Runners changed since the last flush, with the event to write each under.
    runner_dirty: dict[tuple[str, str], faust.types.EventT] = {}
    race_dirty: set[tuple[str, str]] = set()
    stages: dict[str, RaceStage] = {}
    last_event: dict[str, faust.types.EventT] = {}
    offsets: dict[TP, int] = {}
    assigned_at = [time.monotonic()]
    # Events fetched in a generation before fresh_from[0] are stale (see ``current``);
    # fresh_from[1] is the last generation whose stale events were logged.
    fresh_from = [0, -1]

    def ensure_runner(race: str, bib: str) -> None:
        if not runner_stage.is_loaded(race, bib):
            key = f"{race}:{bib}".encode()
            try:
                state, n = runner_store.read(key, stored(runners_table.get(key)),
                                             lambda k: stored(runners_table.get(k)))
            except ValueError as e:
                raise EngineInputError(str(e)) from None
            runner_stage.load(race, bib, state, n)

    def current(ev: faust.types.EventT) -> bool:
        """False for an event fetched before the latest rebalance (a batch being filled
        when partitions were revoked): the runners were forgotten since, and processing
        it on state re-read from the table, before the events between that state and it,
        would give the per-race stage entries of another history under the same journal
        numbers. It is never acknowledged: the partitions' owner reads it again."""
        gen = ev.message.generation_id
        if gen is None or gen >= fresh_from[0]:
            return True
        ev.message.incref()
        m.STALE.labels(ev.message.topic).inc()
        if fresh_from[1] != gen:
            fresh_from[1] = gen
            log.info("skipping events fetched in generation %d, before the rebalance "
                     "(from %s@%d offset %d on)", gen, ev.message.topic,
                     ev.message.partition, ev.message.offset)
        return False

    def journals(events: Mapping[tuple[str, str], faust.types.EventT],
                 ) -> list[tuple[bytes, bytes]]:
        """The runners' new journal entries, with each runner's digest, as race-inputs
        records (key, value), one per race. No await: taken in one step with the state."""
        by_race: dict[str, list[Any]] = {}
        for race, bib, n0, entries in runner_stage.take_journals():
            runner_store.mark(f"{race}:{bib}".encode(), entries)
            ev = events.get((race, bib))
            if ev is not None:  # the runner's latest event: its table partition
                runner_dirty[(race, bib)] = ev
            digest = runner_stage.engine(race).runners[bib].digest()
            by_race.setdefault(race, []).append((bib, n0, entries, digest))
        return [(race.encode(), race_codec.encode(JournalBatch(race=race, runners=items)))
                for race, items in by_race.items()]

    async def to_race(msg: RaceInput) -> None:
        await race_inputs.send(key=msg.race.encode(), value=race_codec.encode(msg))

    async def to_races(records: list[tuple[bytes, bytes]]) -> None:
        for key, value in records:
            await race_inputs.send(key=key, value=value)

    async def forward(events: Mapping[tuple[str, str], faust.types.EventT]) -> None:
        """Send the runners' new journal entries to the per-race stage."""
        await to_races(journals(events))

    def seen(event: faust.types.EventT) -> None:
        msg = event.message
        offsets[TP(msg.topic, msg.partition)] = msg.offset
        m.EVENTS.labels(msg.topic).inc()

    @app.agent(inputs)
    async def per_runner(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(settings.batch_max, within):
            started = time.perf_counter()
            now = wall_ms()
            touched: dict[tuple[str, str], faust.types.EventT] = {}
            for ev in events:
                if not current(ev):
                    continue
                seen(ev)
                held_runners.hold(ev)
                topic = ev.message.topic
                try:
                    if topic == t.PINGS:
                        rec = decode_ping(ev.value)
                        ensure_runner(rec.race, rec.bib)
                        runner_stage.on_ping(rec, now)
                        m.FIX_LAG.observe(max(0.0, (now - rec.fix.t) / 1000.0))
                        touched[(rec.race, rec.bib)] = ev
                    else:
                        chip = decode_chip_read(ev.value)
                        ensure_runner(chip.race, chip.read.bib)
                        runner_stage.on_chip_read(chip, now)
                        touched[(chip.race, chip.read.bib)] = ev
                except (RecordError, UnknownRace, EngineInputError) as e:
                    m.REJECTED.labels(topic, type(e).__name__).inc()
                    log.debug("skipped a %s record: %s", topic, e)
            await forward(touched)
            m.BATCH.observe(time.perf_counter() - started)

    @app.agent(runner_commands)
    async def per_runner_commands(stream: faust.StreamT[bytes]) -> None:
        async for ev in stream.events():
            if not current(ev):
                continue
            seen(ev)
            held_runners.hold(ev)
            rec = decoded(commands_codec, ev)
            if rec is None:
                continue
            race, bib = rec.race, rec.bib
            try:
                ensure_runner(race, bib)
            except (UnknownRace, EngineInputError) as e:
                result: tuple[str, str | None] = ("rejected", str(e))
            else:
                if isinstance(rec, Resync):  # from the per-race stage, not race control
                    # The pending entries and the state they lead to, taken together:
                    # a rebalance while sending must not leave the two apart.
                    pending = journals({(race, bib): ev})
                    state, n = runner_stage.snapshot(race, bib)
                    sync = RunnerSync(race=race, bib=bib, n=n, state=state)
                    await to_races([*pending, (race.encode(), race_codec.encode(sync))])
                    continue
                result = runner_stage.on_command(to_builtins(rec), wall_ms())
            await forward({(race, bib): ev})
            await to_race(CommandAudit(race=race, entry=audit(
                to_builtins(rec), *result, wall_ms())))

    @app.agent(control)
    async def router(stream: faust.StreamT[bytes]) -> None:
        async for ev in stream.events():
            seen(ev)
            try:
                cmd = decode_command(ev.value, ev.key, set(races))
            except CommandError as e:
                m.REJECTED.labels(t.CONTROL, "bad_command").inc()
                log.warning("control command skipped: %s", e)
                continue
            key = cmd["race"].encode()
            problem = check(cmd)
            if problem is not None:  # routable but malformed: audited as rejected
                m.REJECTED.labels(t.CONTROL, "bad_command").inc()
                await to_race(CommandAudit(race=cmd["race"], entry=audit(
                    cmd, "rejected", problem, wall_ms())))
                continue
            if is_runner_command(cmd):
                await runner_commands.send(key=key + b":" + cmd["bib"].encode(),
                                           value=orjson.dumps(cmd))
            else:
                await to_race(RaceCommand(race=cmd["race"], command=cmd))

    def stage_for(race: str) -> RaceStage | None:
        stage = stages.get(race)
        if stage is None and race in races:
            prefix = f"{race}:".encode()
            saved = {_key(k): stored(v) for k, v in race_runners.items()
                     if _key(k).startswith(prefix) and v is not None}
            runners = []
            for key, head in saved.items():
                if is_chunk_key(key):
                    continue
                try:
                    state, n = race_store.read(key, head, saved.get)
                except ValueError as e:
                    log.error("race %s: a stored runner is unreadable, asking for it "
                              "again: %s", race, e)
                    continue
                if state is not None:
                    runners.append((state, n))
            stage = RaceStage.restore(races[race], stored(races_table.get(race.encode())),
                                      runners, timing)
            stages[race] = stage
            log.info("race %s: took over with %d runners", race, len(runners))
        return stage

    async def ask_for_runners(stage: RaceStage, now: int) -> None:
        race = stage.race.id
        for bib in stage.sync_requests(now):
            m.RESYNCS.inc()
            await runner_commands.send(key=f"{race}:{bib}".encode(),
                                       value=commands_codec.encode(Resync(race=race, bib=bib)))

    def on_race_input(stage: RaceStage, msg: RaceInput, now: int) -> None:
        race = stage.race.id
        if isinstance(msg, JournalBatch):
            for bib, n0, entries, digest in msg.runners:
                diverged = stage.diverged
                try:
                    applied = stage.on_journal(bib, n0, entries, now, digest)
                except EngineInputError as e:
                    m.REJECTED.labels("race-inputs", "bad_journal").inc()
                    log.warning("race %s: journal of %s skipped: %s", race, bib, e)
                    continue
                if stage.diverged > diverged:
                    m.DIVERGED.inc()
                    log.warning("race %s: runner %s differs from its owner's state at "
                                "entry %d; asking for it whole", race, bib, stage.counts[bib])
                if applied:
                    race_store.mark(f"{race}:{bib}".encode(), applied)
                    race_dirty.add((race, bib))
        elif isinstance(msg, RunnerSync):
            stage.on_sync(msg.state, msg.n, now)
            race_store.mark_all(f"{race}:{msg.bib}".encode())
            race_dirty.add((race, msg.bib))
        elif isinstance(msg, RaceCommand):
            stage.on_audit(audit(msg.command, *stage.on_command(msg.command, now), now))
        elif isinstance(msg, CommandAudit):
            stage.on_audit(msg.entry)

    @app.agent(race_inputs)
    async def per_race(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(settings.batch_max, within):
            now = wall_ms()
            for ev in events:
                if not current(ev):
                    continue
                seen(ev)
                held_races.hold(ev)
                msg = decoded(race_codec, ev)
                if msg is None:
                    continue
                stage = stage_for(msg.race)
                if stage is None:
                    m.REJECTED.labels(ev.message.topic, "unknown_race").inc()
                    continue
                last_event[stage.race.id] = ev
                try:
                    on_race_input(stage, msg, now)
                except (EngineInputError, KeyError, TypeError, ValueError) as e:
                    m.REJECTED.labels(ev.message.topic, "bad_state").inc()
                    log.warning("race input skipped: %s", e)
            for stage in list(stages.values()):
                await ask_for_runners(stage, now)

    @app.timer(settings.flush_ms / 1000.0)
    async def flush() -> None:
        """Write the changed runners to the tables, then let their input be committed.
        No await inside: the agents cannot change state half-way through."""
        if app.rebalancing:
            return
        started = time.perf_counter()
        written = 0

        def write(table: Any, store: RunnerStore, ev: faust.types.EventT, race: str,
                  bib: str, r: Any, n: int) -> None:
            nonlocal written
            with event_context(ev):
                for k, v in store.writes(f"{race}:{bib}".encode(), r, n):
                    table[k] = v
                    written += len(v)

        for (race, bib), ev in runner_dirty.items():
            if runner_stage.is_loaded(race, bib):
                write(runners_table, runner_store, ev, race, bib,
                      runner_stage.engine(race).runners[bib], runner_stage.count(race, bib))
        runner_dirty.clear()
        held_runners.release(app.consumer)
        for race, bib in race_dirty:
            stage, ev = stages.get(race), last_event.get(race)
            if stage is not None and ev is not None:
                write(race_runners, race_store, ev, race, bib, stage.engine.runners[bib],
                      stage.counts.get(bib, 0))
        race_dirty.clear()
        held_races.release(app.consumer)
        m.FLUSH.observe(time.perf_counter() - started)
        m.FLUSH_BYTES.inc(written)

    def owns_races() -> bool:
        if app.rebalancing or getattr(app, "in_recovery", False):
            return False
        return TP(race_inputs.get_topic_name(), 0) in app.assignor.assigned_actives()

    @app.timer(settings.publish_ms / 1000.0)
    async def publish() -> None:
        if not owns_races():
            return
        for race in races:
            stage = stage_for(race)
            if stage is None:
                continue
            started = time.perf_counter()
            try:
                records = [(topic, key, t.BY_NAME[topic].codec.encode(value))
                           for topic, key, value in stage.publish(wall_ms())]
            except Exception:  # one bad round must not stop the worker or other races
                log.exception("race %s: publish round failed; the next round retries", race)
                continue
            for topic, key, value in records:
                await outputs[topic].send(key=key.encode(), value=value)
                m.PUBLISHED.labels(topic).inc()
            ev = last_event.get(race)
            if not stage.saved and ev is not None:
                with event_context(ev):
                    races_table[race.encode()] = orjson.dumps(stage.meta())
                stage.saved = True
            m.PUBLISH.observe(time.perf_counter() - started)

    @app.timer(5.0)
    async def gauges() -> None:
        for tp, offset in list(offsets.items()):
            with contextlib.suppress(Exception):
                m.CONSUMER_LAG.labels(tp.topic).set(
                    max(0, app.consumer.highwater(tp) - offset - 1))
        m.TABLE_KEYS.labels("runners").set(len(runner_stage.loaded()))
        m.TABLE_KEYS.labels("race-runners").set(
            sum(len(s.engine.runners) for s in stages.values()))
        m.ALERTS_OPEN.clear()
        for race, stage in stages.items():
            for a in stage.engine.alerts():
                m.ALERTS_OPEN.labels(race, a["kind"]).inc()

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        # Another worker may own these runners or the races now: re-read state from
        # the tables when they come back rather than trusting what is in memory, and
        # leave what was not written to be processed again from the committed offsets.
        fresh_from[0] = app.consumer_generation_id + 1
        runner_stage.forget()
        runner_store.forget()
        race_store.forget()
        stages.clear()
        runner_dirty.clear()
        race_dirty.clear()
        held_runners.drop()
        held_races.drop()
        assigned_at[0] = time.monotonic()

    @app.on_rebalance_complete.connect
    async def on_rebalanced(sender: Any, **kwargs: Any) -> None:
        m.RECOVERY.set(time.monotonic() - assigned_at[0])

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; Prometheus reads text/plain.
        return web.bytes(generate_latest(m.REGISTRY), content_type="text/plain",
                         headers={"X-Prometheus-Format": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        pings = sorted(tp.partition for tp in app.assignor.assigned_actives()
                       if tp.topic == t.PINGS)
        return web.json({"status": "ok", "races": sorted(races), "owns_races": owns_races(),
                         "rebalancing": bool(app.rebalancing), "pings_partitions": pings})

    return app
