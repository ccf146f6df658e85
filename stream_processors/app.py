"""The Faust topology: thin adapters that decode, call the stages, encode.

    pings.v1, chip-reads.v1 ─┐
    <app>-runner-commands ───┴─► per-runner stage (6 partitions, table "runners")
                                     │ runner snapshots, command results
    control.v1 ─► router ────────────┼─► <app>-race-inputs (1 partition, key race)
                                     ▼
                      per-race stage (tables "race-runners", "races"), on a timer:
                      standings.v1, runner-updates.v1, alerts.v1, control-log.v1

Everything about a runner is keyed ``race:bib``, so the per-runner topics are
co-partitioned and one worker owns a runner's fixes, chip reads, commands and table
entry. Table entries are written once per batch for each runner that changed, under
the runner's latest event of the batch, so the entry lands in the runner's partition.
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
from stream_processors.commands import CommandError, audit, decode_command, is_runner_command
from stream_processors.race_stage import RaceStage, Timing
from stream_processors.runner_stage import RunnerStage, UnknownRace
from stream_processors.settings import ProcessSettings
from zegama_live import topics as t
from zegama_live.records import RecordError, decode_chip_read, decode_ping

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
    """A table value as JSON data. Values are written as JSON bytes; after a recovery
    from the changelog Faust may hand them back already decoded."""
    if value is None or isinstance(value, dict | list):
        return value
    return orjson.loads(value)


def _key(k: Any) -> bytes:
    return k if isinstance(k, bytes) else str(k).encode()


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
    )
    within = settings.batch_within_ms / 1000.0
    timing = Timing(snapshot_ms=round(settings.snapshot_every_s * 1000),
                    tick_ms=settings.tick_ms, track_step_m=settings.track_step_m)
    inputs = app.topic(t.PINGS, t.CHIP_READS, **RAW)
    runner_commands = app.topic(f"{settings.app_id}-runner-commands", partitions=6,
                                internal=True, **RAW)
    race_inputs = app.topic(f"{settings.app_id}-race-inputs", partitions=1, internal=True,
                            **RAW)
    control = app.topic(t.CONTROL, **RAW)
    outputs = {name: app.topic(name, **RAW) for name in
               (t.STANDINGS, t.RUNNER_UPDATES, t.ALERTS, t.CONTROL_LOG)}
    table_args: dict[str, Any] = {"default": None,
                                  "schema": faust.Schema(**RAW)}
    runners_table = app.Table("runners", partitions=6, **table_args)
    race_runners = app.Table("race-runners", partitions=1, **table_args)
    races_table = app.Table("races", partitions=1, **table_args)
    runner_stage = RunnerStage(races)
    stages: dict[str, RaceStage] = {}
    last_event: dict[str, faust.types.EventT] = {}
    offsets: dict[TP, int] = {}
    assigned_at = [time.monotonic()]

    def ensure_runner(race: str, bib: str) -> None:
        if not runner_stage.is_loaded(race, bib):
            raw = runners_table.get(f"{race}:{bib}".encode())
            runner_stage.load(race, bib, stored(raw))

    async def forward(events: dict[tuple[str, str], faust.types.EventT]) -> None:
        for race, bib, snap in runner_stage.take_snapshots():
            key = f"{race}:{bib}".encode()
            with event_context(events[(race, bib)]):
                runners_table[key] = orjson.dumps(snap)
            await race_inputs.send(key=race.encode(), value=orjson.dumps(
                {"type": "runner", "race": race, "bib": bib, "state": snap}))

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
                seen(ev)
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
            seen(ev)
            cmd = orjson.loads(ev.value)
            try:
                ensure_runner(cmd["race"], cmd["bib"])
            except (UnknownRace, EngineInputError) as e:
                result: tuple[str, str | None] = ("rejected", str(e))
            else:
                result = runner_stage.on_command(cmd, wall_ms())
            await forward({(cmd["race"], cmd["bib"]): ev})
            await race_inputs.send(key=cmd["race"].encode(), value=orjson.dumps(
                {"type": "audit", "race": cmd["race"],
                 "entry": audit(cmd, *result, wall_ms())}))

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
            if is_runner_command(cmd):
                await runner_commands.send(key=key + b":" + cmd["bib"].encode(),
                                           value=orjson.dumps(cmd))
            else:
                await race_inputs.send(key=key, value=orjson.dumps(
                    {"type": "command", "race": cmd["race"], "command": cmd}))

    def stage_for(race: str) -> RaceStage | None:
        stage = stages.get(race)
        if stage is None and race in races:
            prefix = f"{race}:".encode()
            snaps = [stored(v) for k, v in race_runners.items()
                     if _key(k).startswith(prefix) and v is not None]
            stage = RaceStage.restore(races[race], stored(races_table.get(race.encode())),
                                      snaps, timing)
            stages[race] = stage
            log.info("race %s: took over with %d runners", race, len(snaps))
        return stage

    @app.agent(race_inputs)
    async def per_race(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(settings.batch_max, within):
            now = wall_ms()
            latest: dict[bytes, tuple[faust.types.EventT, bytes]] = {}
            for ev in events:
                seen(ev)
                msg = orjson.loads(ev.value)
                stage = stage_for(msg.get("race"))
                if stage is None:
                    m.REJECTED.labels(ev.message.topic, "unknown_race").inc()
                    continue
                last_event[stage.race.id] = ev
                kind = msg.get("type")
                try:
                    if kind == "runner":
                        stage.on_runner(msg["state"], now)
                        latest[f"{msg['race']}:{msg['bib']}".encode()] = (
                            ev, orjson.dumps(msg["state"]))
                    elif kind == "command":
                        cmd = msg["command"]
                        stage.on_audit(audit(cmd, *stage.on_command(cmd, now), now))
                    elif kind == "audit":
                        stage.on_audit(msg["entry"])
                except (EngineInputError, KeyError) as e:
                    m.REJECTED.labels(ev.message.topic, "bad_state").inc()
                    log.warning("race input skipped: %s", e)
            for key, (ev, value) in latest.items():
                with event_context(ev):
                    race_runners[key] = value

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
                records = [(topic, key, orjson.dumps(value))
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
        # the tables when they come back rather than trusting what is in memory.
        runner_stage.forget()
        stages.clear()
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
