"""Stream processors: fixes/s through one worker, fix-to-standings latency, raw ceiling.

Starts a broker of its own (a temporary folder, free ports) and runs, each in its own
process beside it:

1. throughput: ``--fixes`` simulated fixes of ``--runners`` entrants of the race are
   pre-loaded into ``pings.v1``; one ``zegama-live process`` worker is started and timed
   until its ``zegama_process_events_total`` reaches them all;
2. ceiling: a raw aiokafka loop consumes the same records and produces one record each
   to a scratch topic (acks=all, like the worker's producer);
3. latency, once per ``--publish-ms`` value: a fresh worker, and this process producing
   ``--rate`` fixes/s (each runner ``rate / runners`` fixes/s, positions along the course
   interpolated from a simulated race that started a minute ago, fix time = wall clock) for
   ``--seconds`` after ``--warmup``, while reading ``standings.v1``: a fix's latency is the
   time from handing it to the producer to the first standings record whose row of that
   bib has ``last_fix_ms`` at or after the fix's time.

Prints the figures; ``--out FILE`` also writes them as JSON. Run::

    .venv/bin/python benchmarks/processor_bench.py --out /tmp/processor-bench.json
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import numpy as np
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.provenance import code_version  # noqa: E402
from race_engine.model import Fix, Race  # noqa: E402
from race_engine.racefolder import load_race  # noqa: E402
from race_engine.simulate import SimOptions, Simulation, simulate  # noqa: E402
from zegama_live import kafka_local  # noqa: E402
from zegama_live.records import PingRecord, encode_ping  # noqa: E402
from zegama_live.service import stop_child  # noqa: E402
from zegama_live.topics import BY_NAME, PINGS, STANDINGS, runner_key  # noqa: E402

SCRATCH = "bench-scratch"
EVENTS = re.compile(r'^zegama_process_events_total\{topic="pings\.v1"\} ([0-9.e+]+)$', re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def race_copy(source: Path, folder: Path, start_ms: int) -> Path:
    """A copy of the race folder ``source`` whose start is ``start_ms`` (so the simulated
    fixes fall around the wall clock, as on race day). Returns the copy's folder."""
    target = folder / source.resolve().name
    shutil.copytree(source, target)
    toml = target / "race.toml"
    zone = ZoneInfo(load_race(source).timezone)  # the offset must match the race's zone
    start = dt.datetime.fromtimestamp(start_ms / 1000, zone).isoformat(timespec="seconds")
    text, n = re.subn(r'^start = ".*"$', f'start = "{start}"', toml.read_text(), flags=re.M)
    if n != 1:
        raise SystemExit(f"{toml}: expected one 'start = \"...\"' line to move the start")
    toml.write_text(text)
    return target


def sim_race(race: Race, runners: int, seed: int) -> Simulation:
    return simulate(race, np.random.default_rng(seed),
                    SimOptions(runners=runners, interval_s=10.0, incidents=False))


def ping_records(race: Race, sim: Simulation, limit: int) -> list[tuple[bytes, bytes]]:
    """The first ``limit`` simulated fixes in arrival order as ``pings.v1`` records."""
    bibs = {e.device: e.bib for e in race.entrants}
    out = []
    for fix, arrival in sim.pings():
        bib = bibs[fix.device]
        rec = PingRecord(race=race.id, bib=bib, fix=fix, received_ms=arrival, source="batch")
        out.append((runner_key(race.id, bib), encode_ping(rec)))
        if len(out) == limit:
            break
    return out


# --- the broker and its topics -----------------------------------------------------------

async def produce_all(bootstrap: str, records: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                max_batch_size=512 * 1024)
    await producer.start()
    try:
        for i in range(0, len(records), 5000):
            futures = [await producer.send(PINGS, key=k, value=v)
                       for k, v in records[i:i + 5000]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def create_scratch(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(SCRATCH, BY_NAME[PINGS].partitions, 1)])
    finally:
        await admin.close()


async def skip_backlog(bootstrap: str, group: str) -> None:
    """Commit ``group``'s offsets of ``pings.v1`` at its end, so a new worker of that
    group starts with the fixes produced from now on, not the earlier phases' backlog."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(PINGS, p) for p in range(BY_NAME[PINGS].partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.commit({tp: ends[tp] for tp in tps})
    finally:
        await consumer.stop()


# --- a worker ----------------------------------------------------------------------------

class Worker:
    """One ``zegama-live process`` worker as a child process."""

    def __init__(self, bootstrap: str, race: Path, home: Path, app_id: str,
                 publish_ms: int, n: int = 0) -> None:
        self.port = free_port()
        self.log = home / f"{app_id}-{n}.log"
        self.cmd = [sys.executable, "-m", "zegama_live.cli", "process", "--races", str(race),
                    "--kafka-bootstrap", bootstrap, "--data-dir", str(home / f"{app_id}-{n}"),
                    "--app-id", app_id, "--web-port", str(self.port),
                    "--publish-ms", str(publish_ms), "--loglevel", "warn"]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.cmd, cwd=REPO, stdout=out,
                                         stderr=subprocess.STDOUT)

    async def events(self, session: aiohttp.ClientSession) -> int | None:
        """``pings.v1`` records the worker has processed, None while it does not answer."""
        if self.proc.poll() is not None:
            raise SystemExit(f"the worker exited ({self.proc.returncode}); see {self.log}")
        try:
            async with session.get(f"http://127.0.0.1:{self.port}/metrics") as resp:
                found = EVENTS.search(await resp.text())
        except aiohttp.ClientError:
            return None
        return int(float(found.group(1))) if found else 0

    async def stage_times(self, session: aiohttp.ClientSession) -> dict[str, float]:
        """Means of the worker's own timings: fix time to processing (fix lag), one input
        batch, one publish round, one flush (seconds)."""
        async with session.get(f"http://127.0.0.1:{self.port}/metrics") as resp:
            text = await resp.text()
        out = {}
        for name in ("fix_lag", "batch", "publish", "flush"):
            total = re.search(rf"^zegama_process_{name}_seconds_sum ([0-9.e+]+)$", text, re.M)
            count = re.search(rf"^zegama_process_{name}_seconds_count ([0-9.e+]+)$", text, re.M)
            if total and count and float(count.group(1)):
                out[name] = round(float(total.group(1)) / float(count.group(1)), 4)
        return out

    async def health(self, session: aiohttp.ClientSession) -> dict[str, Any] | None:
        """The worker's /healthz, None while it does not answer."""
        if self.proc.poll() is not None:
            raise SystemExit(f"the worker exited; see {self.log}")
        try:
            async with session.get(f"http://127.0.0.1:{self.port}/healthz") as resp:
                return dict(await resp.json()) if resp.status == 200 else None
        except aiohttp.ClientError:
            return None

    def stop(self) -> None:
        stop_child(self.proc)


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the worker (non-blocking, so the run it samples is not slowed)."""
    cmd = [str(REPO / ".venv" / "bin" / "py-spy"), "record", "--pid", str(pid), "--nonblocking",
           "--duration", str(int(seconds)), "--rate", "100", "--format", "raw", "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def profile_summary(raw: Path, top: int = 15) -> dict[str, list[tuple[str, float]]]:
    """Share of samples per function, by itself (self) and with its callees (inclusive)."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return {"self": [], "inclusive": []}
    return {"self": [(f, round(c / total, 3)) for f, c in own.most_common(top)],
            "inclusive": [(f, round(c / total, 3)) for f, c in incl.most_common(top * 3)
                          if "stream_processors" in f or "race_engine" in f
                          or "faust" in f or "aiokafka" in f or "rocksdb" in f][:top]}


# --- 1. throughput -----------------------------------------------------------------------

async def throughput(bootstrap: str, race_dir: Path, home: Path,
                     last_fix: dict[str, int], fixes: int, profile_s: float) -> dict[str, Any]:
    """Fixes/s of one worker draining ``fixes`` pre-loaded records: until it has consumed
    them, and until standings.v1 reflects every runner's last fix (``last_fix``)."""
    pending = {bib: collections.deque([t]) for bib, t in last_fix.items()}
    stop = asyncio.Event()
    reader = asyncio.create_task(read_standings(bootstrap, pending, [], stop))
    started = time.perf_counter()
    worker = Worker(bootstrap, race_dir, home, "bench-throughput", 500)
    samples: list[tuple[float, int, float]] = []
    consumed: tuple[float, float] | None = None
    profiler = None
    try:
        async with aiohttp.ClientSession() as session:
            while True:
                n = await worker.events(session)
                now = time.perf_counter()
                if n:
                    samples.append((now, n, cpu_seconds(worker.proc.pid)))
                    if profiler is None and profile_s > 0:
                        profiler = start_profile(worker.proc.pid, profile_s,
                                                 home / "throughput.pyspy.txt")
                if consumed is None and n is not None and n >= fixes:
                    consumed = samples[-1][0], samples[-1][2]
                if consumed is not None and not any(pending.values()):
                    break
                if now - started > 900:
                    raise SystemExit(f"the worker processed {n} of {fixes} fixes in 900 s")
                await asyncio.sleep(0.25)
            reflected = time.perf_counter(), cpu_seconds(worker.proc.pid)
        if profiler is not None:
            profiler.wait(profile_s + 30)
    finally:
        stop.set()
        await reader
        worker.stop()
    t1, n1, cpu1 = samples[0]
    rates = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(samples, samples[4:], strict=False)]
    out: dict[str, Any] = {
        "fixes": fixes, "fixes_per_s": round((fixes - n1) / (consumed[0] - t1)),
        "fixes_per_cpu_s": round((fixes - n1) / (consumed[1] - cpu1)),
        "peak_1s_fixes_per_s": round(max(rates)) if rates else None,
        "seconds_first_to_last": round(consumed[0] - t1, 2),
        "seconds_with_startup": round(consumed[0] - started, 2),
        "fixes_per_s_into_standings": round((fixes - n1) / (reflected[0] - t1)),
        "seconds_until_standings_reflect_all": round(reflected[0] - t1, 2),
        "worker_cpu_s": round(reflected[1] - cpu1, 1),
    }
    if profiler is not None:
        out["profile"] = profile_summary(home / "throughput.pyspy.txt")
    return out


# --- 2. the raw ceiling --------------------------------------------------------------------

async def raw_loop(bootstrap: str, fixes: int) -> dict[str, Any]:
    """Consume ``fixes`` records of pings.v1 and produce one record each to the scratch
    topic, acks=all; records/s from the first record consumed to the last acknowledged."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(PINGS, bootstrap_servers=bootstrap, group_id="bench-raw",
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_poll_records=2000)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    try:
        done, first, cpu_first = 0, None, 0.0
        while done < fixes:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            futures = []
            for records in batch.values():
                for msg in records:
                    futures.append(await producer.send(SCRATCH, key=msg.key, value=msg.value))
            if futures and first is None:
                first, cpu_first = time.perf_counter(), cpu_seconds(os.getpid())
            await asyncio.gather(*futures)
            done += len(futures)
        assert first is not None
        seconds = time.perf_counter() - first
        cpu = cpu_seconds(os.getpid()) - cpu_first
        return {"fixes": done, "fixes_per_s": round(done / seconds),
                "fixes_per_cpu_s": round(done / cpu), "seconds": round(seconds, 2)}
    finally:
        await producer.stop()
        await consumer.stop()


def ceiling(bootstrap: str, fixes: int) -> dict[str, Any]:
    """Run the raw loop in a process of its own, as the worker runs in its own."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--role", "raw-loop",
           "--bootstrap", bootstrap, "--fixes", str(fixes)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, check=True, timeout=900)
    return dict(orjson.loads(done.stdout.splitlines()[-1]))


# --- 3. latency ----------------------------------------------------------------------------

class Tracks:
    """Each runner's simulated positions, interpolated at any time (ms)."""

    def __init__(self, race: Race, sim: Simulation, runners: int) -> None:
        devices = [e.device for e in race.entrants[:runners]]
        self.bibs = {e.device: e.bib for e in race.entrants}
        self.devices = devices
        self.cols: dict[str, tuple[np.ndarray, ...]] = {}
        for i, device in enumerate(sim.device_ids):
            if device not in self.bibs:
                continue
            mask = sim.dev == i
            order = np.argsort(sim.t[mask])
            self.cols[device] = tuple(np.asarray(c[mask][order], dtype=float) for c in
                                      (sim.t, sim.lat, sim.lon, sim.ele))

    def fix(self, device: str, t: int) -> Fix:
        ts, lat, lon, ele = self.cols[device]
        return Fix(device=device, t=t, lat=float(np.interp(t, ts, lat)),
                   lon=float(np.interp(t, ts, lon)), ele=float(np.interp(t, ts, ele)),
                   acc=8.0, bat=0.8, sos=False)


async def read_standings(bootstrap: str, pending: dict[str, collections.deque[int]],
                         latencies: list[tuple[int, float]], stop: asyncio.Event) -> int:
    """Match standings records to pending fixes until ``stop``; returns records read."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    tp = TopicPartition(STANDINGS, 0)
    consumer.assign([tp])
    await consumer.seek_to_end(tp)
    records = 0
    try:
        while not stop.is_set():
            batch = await consumer.getmany(tp, timeout_ms=100)
            now = time.time() * 1000
            for msg in batch.get(tp, []):
                rec = orjson.loads(msg.value)
                records += 1
                rows = rec["board"]["runners"] if rec["type"] == "snapshot" else rec["rows"]
                for row in rows:
                    waiting = pending.get(row["bib"])
                    last = row.get("last_fix_ms")
                    while waiting and last is not None and waiting[0] <= last:
                        t = waiting.popleft()
                        latencies.append((t, now - t))
    finally:
        await consumer.stop()
    return records


async def latency(bootstrap: str, source: Path, home: Path, runners: int, rate: int,
                  seconds: float, warmup: float, publish_ms: int, seed: int,
                  profile_s: float, workers: int = 1) -> dict[str, Any]:
    """p50/p99 from a fix handed to the producer to the standings record reflecting it,
    with ``workers`` workers sharing the partitions."""
    from aiokafka import AIOKafkaProducer

    wall = int(time.time() * 1000)
    folder = home / f"latency-{publish_ms}-{rate}-{workers}"
    folder.mkdir()
    # The race started a minute ago: every runner's fixes go back to the start, and no
    # runner reaches the 1 km from which finish projections are made.
    race_dir = race_copy(source, folder, wall - 60_000)
    race = load_race(race_dir)
    tracks = Tracks(race, sim_race(race, runners, seed), runners)
    app_id = f"bench-latency-{publish_ms}-{rate}-{workers}"
    await skip_backlog(bootstrap, app_id)
    group = [Worker(bootstrap, race_dir, folder, app_id, publish_ms, n)
             for n in range(workers)]
    pending: dict[str, collections.deque[int]] = collections.defaultdict(collections.deque)
    found: list[tuple[int, float]] = []
    stop = asyncio.Event()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        async with aiohttp.ClientSession() as session:
            await wait_shared(group, session, 180)
            reader = asyncio.create_task(read_standings(bootstrap, pending, found, stop))
            await asyncio.sleep(1.0)
            profiler = (start_profile(group[0].proc.pid, profile_s, folder / "pyspy.txt")
                        if profile_s > 0 else None)
            cpu_before = sum(cpu_seconds(w.proc.pid) for w in group)
            began = time.time() * 1000
            measure_from = began + warmup * 1000
            sent = await pace(producer, race, tracks, pending, rate, warmup + seconds)
            await asyncio.sleep(max(3.0, 4 * publish_ms / 1000))  # the last fixes' records
            stop.set()
            records = await reader
            processed = sum([await w.events(session) or 0 for w in group])
            stages = await group[0].stage_times(session)
            cpu = sum(cpu_seconds(w.proc.pid) for w in group) - cpu_before
        if profiler is not None:
            profiler.wait(profile_s + 30)
    finally:
        await producer.stop()
        for w in group:
            w.stop()
    measured = [lat for t, lat in found if t >= measure_from]
    in_window = sum(1 for t in sent if t >= measure_from)
    return {"publish_ms": publish_ms, "workers": workers, "runners": runners,
            "rate_per_s": rate, "seconds": seconds, "warmup_s": warmup,
            "fixes_sent": len(sent), "fixes_measured": in_window,
            "fixes_reflected": len(measured), "worker_processed": processed,
            "standings_records": records, "worker_cpu_s": round(cpu, 1),
            "cpu_s_per_1000_fixes": round(1000 * cpu / max(1, len(sent)), 3),
            "p50_ms": round(percentile(measured, 0.50), 1),
            "p90_ms": round(percentile(measured, 0.90), 1),
            "p99_ms": round(percentile(measured, 0.99), 1),
            "max_ms": round(max(measured), 1) if measured else None,
            "first_worker_stage_seconds": stages,
            **({"profile": profile_summary(folder / "pyspy.txt")} if profiler else {})}


async def wait_shared(group: list[Worker], session: aiohttp.ClientSession,
                      timeout_s: float) -> None:
    """Until the workers share all six ``pings.v1`` partitions (each holding some) and
    one of them owns the race's board."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        health = [await w.health(session) for w in group]
        if all(health):
            parts = sorted(p for h in health for p in h["pings_partitions"])
            if parts == list(range(6)) and all(h["pings_partitions"] for h in health) \
                    and any(h["owns_races"] for h in health):
                return
        await asyncio.sleep(0.5)
    raise SystemExit(f"the workers did not share the partitions within {timeout_s:.0f} s")


async def pace(producer: Any, race: Race, tracks: Tracks,
               pending: dict[str, collections.deque[int]], rate: int,
               seconds: float) -> list[int]:
    """Send ``rate`` fixes/s round-robin over the runners (fix time = now) for ``seconds``;
    returns the fix times sent."""
    sent: list[int] = []
    last_t: dict[str, int] = {}
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(int(elapsed * rate) - len(sent)):
            device = tracks.devices[len(sent) % len(tracks.devices)]
            t = max(int(time.time() * 1000), last_t.get(device, 0) + 1)
            last_t[device] = t
            bib = tracks.bibs[device]
            rec = PingRecord(race=race.id, bib=bib, fix=tracks.fix(device, t), received_ms=t,
                             source="batch")
            pending[bib].append(t)
            sent.append(t)
            await producer.send(PINGS, key=runner_key(race.id, bib), value=encode_ping(rec))
        await asyncio.sleep(0.01)
    return sent


# --- the whole run -------------------------------------------------------------------------

async def measure(args: argparse.Namespace, bootstrap: str, home: Path) -> dict[str, Any]:
    source = Path(args.race)
    results: dict[str, Any] = {"code": code_version(), "cpus": os.cpu_count(),
                               "python": sys.version.split()[0],
                               "load_average_at_start": os.getloadavg()}
    sim_span_ms = 3_500_000  # the first 200,000 fixes of 500 runners: about an hour
    race_dir = race_copy(source, home, int(time.time() * 1000) - sim_span_ms)
    race = load_race(race_dir)
    records = ping_records(race, sim_race(race, args.runners, args.seed), args.fixes)
    began = time.perf_counter()
    await produce_all(bootstrap, records)
    print(f"pre-loaded {len(records)} fixes of {args.runners} runners into {PINGS} "
          f"in {time.perf_counter() - began:.1f} s")
    last_fix: dict[str, int] = {}
    for key, value in records:
        bib = key.decode().partition(":")[2]
        last_fix[bib] = max(last_fix.get(bib, 0), orjson.loads(value)["t"])
    tput = await throughput(bootstrap, race_dir, home, last_fix, len(records), args.profile)
    results["throughput"] = tput
    print(f"1. worker: {tput['fixes_per_s']} fixes/s consumed ({len(records)} fixes in "
          f"{tput['seconds_first_to_last']} s from its first event, "
          f"{tput['fixes_per_cpu_s']} per CPU-second of the worker); "
          f"{tput['fixes_per_s_into_standings']} fixes/s into standings.v1 (every runner's "
          f"last fix published after {tput['seconds_until_standings_reflect_all']} s)")
    await create_scratch(bootstrap)
    results["ceiling"] = ceil = await asyncio.to_thread(ceiling, bootstrap, len(records))
    print(f"2. raw aiokafka consume+produce: {ceil['fixes_per_s']} fixes/s "
          f"({ceil['fixes_per_cpu_s']} per CPU-second); the worker "
          f"reaches {tput['fixes_per_s'] / ceil['fixes_per_s']:.0%} of it")
    results["latency"] = []
    runs = [(r, p, w) for r in args.rate for p in args.publish_ms for w in args.workers]
    for rate, publish_ms, workers in runs:
        lat = await latency(bootstrap, source, home, args.latency_runners, rate,
                            args.seconds, args.warmup, publish_ms, args.seed, args.profile,
                            workers)
        results["latency"].append(lat)
        print(f"3. latency at {rate} fixes/s, --publish-ms {publish_ms}, {workers} worker(s): "
              f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms "
              f"({lat['fixes_reflected']} of {lat['fixes_measured']} fixes reflected; the "
              f"workers processed {lat['worker_processed']} of {lat['fixes_sent']} sent; "
              f"{lat['cpu_s_per_1000_fixes']} CPU-s per 1,000 fixes)")
    return results


def free_port_pair() -> int:
    """A port p such that p and p + 1 (the controller's) are both free."""
    while True:
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue


def start_broker() -> tuple[kafka_local.LocalKafka, Path]:
    """A broker of its own in a temporary folder; retried on a port taken meanwhile."""
    home = Path(tempfile.mkdtemp(prefix="zegama-processor-bench-"))
    for attempt in range(3):
        port = free_port_pair()
        broker = kafka_local.LocalKafka(home=home / f"kafka-{attempt}", port=port,
                                        controller_port=port + 1)
        try:
            print(kafka_local.start(broker))
            return broker, home
        except kafka_local.KafkaError as exc:
            print(f"broker did not start ({exc}); trying other ports")
    shutil.rmtree(home, ignore_errors=True)
    raise SystemExit("the broker did not start three times; see the messages above")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--race", default="races/zegama-2026")
    parser.add_argument("--fixes", type=int, default=200_000, help="pre-loaded fixes")
    parser.add_argument("--runners", type=int, default=500, help="runners of the pre-load")
    parser.add_argument("--latency-runners", type=int, default=500)
    parser.add_argument("--rate", type=int, nargs="+", default=[1000],
                        help="fixes/s of the latency runs")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured latency run")
    parser.add_argument("--warmup", type=float, default=10.0, help="unmeasured lead-in (s)")
    parser.add_argument("--publish-ms", type=int, nargs="+", default=[500, 100])
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="workers sharing the partitions in the latency runs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", type=float, default=0.0,
                        help="sample each worker with py-spy for this many s")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--role", choices=["run", "raw-loop"], default="run",
                        help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "raw-loop":
        print(orjson.dumps(asyncio.run(raw_loop(args.bootstrap, args.fixes))).decode())
        return 0
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, code {code_version()}")
    broker, home = start_broker()
    results = None
    try:
        results = asyncio.run(measure(args, broker.bootstrap, home))
    finally:
        print(kafka_local.stop(broker))
        if results is not None and not args.profile:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"the worker logs (and py-spy samples) are in {home}")
    if args.out:
        args.out.write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
