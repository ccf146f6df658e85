"""Broadcast fan-out: frames/s per broadcaster core, tick-to-client latency, memory per client.

For each spectator count and standings rate, two servers are measured with the same
swarm (``loadtest.swarm``) over loopback, one after the other:

1. ``ceiling``: a bare asyncio loop writing the pre-framed update bytes to every
   connection per tick (``loadtest.swarm_ceiling``), fed by the same records directly;
2. ``broadcaster``: ``zegama-live broadcast`` in its own process, reading
   ``standings.v1`` from a real local broker (started here in ``var/kafka-bench-broadcast``
   on free ports) where this script produces a simulated 500-runner board at the rate.

Each phase: the server starts, its RSS is taken, the swarm connects (ramp), then a
steady window of ``--seconds``: data frames delivered to clients / server CPU seconds
(psutil) = frames per core-second; tick-to-client latency (receive time - the frame's
``generated_ms``) p50/p99; (RSS in the window - RSS before) / connections. The
machine's cores are shared by the broker, the server and the swarm: the busy share of
each is printed beside the figures. Run::

    .venv/bin/python benchmarks/broadcast_bench.py --clients 5000 --rates 1 2 --out b.json
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.provenance import code_version  # noqa: E402
from loadtest.swarm import SwarmResult, run_swarm  # noqa: E402
from loadtest.swarm_ceiling import ceiling_main  # noqa: E402
from loadtest.swarm_client import GENERATED  # noqa: E402
from loadtest.swarm_feed import Stamper, StandingsFeed, simulate_feed  # noqa: E402
from loadtest.swarm_histogram import Histogram  # noqa: E402
from zegama_live import kafka_local  # noqa: E402
from zegama_live.topics import STANDINGS  # noqa: E402

GOAL_SHARE, GOAL_P99_MS, GOAL_KIB = 0.80, 250.0, 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sampler(threading.Thread):
    """Samples CPU time and RSS of the server, CPU of the broker, of this script with its
    other children (the swarm) and of the whole machine, 4 times a second."""

    def __init__(self, pid: int, broker_pid: int | None) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.broker = psutil.Process(broker_pid) if broker_pid else None
        self.samples: list[tuple[float, ...]] = []
        self.halt = threading.Event()

    @staticmethod
    def _cpu(p: psutil.Process | None) -> float:
        if p is None:
            return 0.0
        try:
            c = p.cpu_times()
        except psutil.Error:
            return 0.0
        return float(c.user + c.system)

    def sample(self) -> None:
        me = psutil.Process()
        apart = {self.proc.pid, self.broker.pid if self.broker else None}
        swarm = self._cpu(me) + sum(self._cpu(c) for c in me.children(recursive=True)
                                    if c.pid not in apart)
        m = psutil.cpu_times()
        self.samples.append((time.time(), self._cpu(self.proc), self.proc.memory_info().rss,
                             self._cpu(self.broker), swarm,
                             m.user + m.system + m.nice + m.irq + m.softirq,
                             m.irq + m.softirq))

    def run(self) -> None:
        while not self.halt.wait(0.25):
            self.sample()

    def between(self, t0: float, t1: float) -> dict[str, float]:
        """Cores used in [t0, t1] (server, broker, swarm, others) and the median RSS."""
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2:
            return {}
        first, last = inside[0], inside[-1]
        span = last[0] - first[0]
        rss = sorted(s[2] for s in inside)[len(inside) // 2]
        server, broker, swarm, machine, irq = ((last[i] - first[i]) / span
                                               for i in (1, 3, 4, 5, 6))
        # Interrupt time (loopback TCP delivery runs in softirq) is charged to no process.
        return {"span_s": span, "server_cores": server, "rss": rss, "broker_cores": broker,
                "swarm_cores": swarm, "irq_cores": irq, "machine_cores": machine,
                "other_cores": machine - server - broker - swarm - irq}


def steady_window(result: SwarmResult, seconds: int) -> tuple[int, int]:
    """``seconds`` seconds from 3 s after the last connect, or the run's last ``seconds``
    seconds when the ramp did not end in time (the figures then say how many were open)."""
    total = result.total.connects
    seen, settled = 0, len(result.seconds)
    for s in result.seconds:
        seen += s.tally.connects
        if seen >= total:
            settled = s.second + 3
            break
    first = max(0, min(settled, len(result.seconds) - seconds))
    return first, min(len(result.seconds), first + seconds)


def measure(name: str, pid: int, broker_pid: int | None, url: str, channel: str, clients: int,
            hz: float, args: argparse.Namespace) -> dict[str, Any]:
    """Run the swarm against the server ``pid`` and return the figures of the steady window."""
    rss0 = psutil.Process(pid).memory_info().rss
    sampler = Sampler(pid, broker_pid)
    sampler.start()
    ramp = args.ramp_s if args.ramp_s else 10 + clients / 400
    result = run_swarm(url, channel, clients, args.processes, ramp + args.seconds + 3,
                       top=args.top, parse_every=args.parse_every,
                       on_second=lambda s: print(f"  {name:11} {s.line()}", flush=True))
    sampler.halt.set()
    sampler.join()
    a, b = steady_window(result, args.seconds)
    w = result.window(a, b)
    usage = sampler.between(result.start_wall + a, result.start_wall + b)
    nan = float("nan")
    per_s = (w.snapshots + w.updates) / max(1, b - a)
    cores = usage.get("server_cores", nan)
    out = {
        "server": name, "clients": clients, "hz": hz, "open": w.open,
        "window_s": [a, b], "connect_failures": result.total.connect_failures,
        "disconnects": {str(k): v for k, v in result.total.disconnects.items()},
        "frames_per_s": per_s, "expected_frames_per_s": w.open * hz,
        "snapshots": w.snapshots, "updates": w.updates, "mbytes_per_s": w.bytes / 1e6 / (b - a),
        "server_cores": cores, "frames_per_core_s": per_s / cores,
        **{k: usage.get(k, nan) for k in ("broker_cores", "swarm_cores", "irq_cores",
                                           "machine_cores", "other_cores")},
        "rss_before_mb": rss0 / 2**20, "rss_mb": usage.get("rss", 0) / 2**20,
        "kib_per_connection": (usage.get("rss", 0) - rss0) / 1024 / max(1, w.open),
        "tick_latency_ms": w.tick.summary(), "e2e_latency_ms": w.e2e.summary(),
        "connect_ms": result.total.connect.summary(), "worker_failures": result.failures,
    }
    print(f"  {name}: {clients} clients at {hz:g} Hz: {per_s:,.0f} frames/s "
          f"({out['expected_frames_per_s']:,.0f} due), {out['server_cores']:.2f} cores -> "
          f"{out['frames_per_core_s']:,.0f} frames/core-s, tick p50 "
          f"{w.tick.percentile(0.5):.0f} ms p99 {w.tick.percentile(0.99):.0f} ms, "
          f"{out['kib_per_connection']:.1f} KiB/conn; cores: swarm {out['swarm_cores']:.2f} "
          f"broker {out['broker_cores']:.2f} irq {out['irq_cores']:.2f} "
          f"other work {out['other_cores']:.2f} "
          f"machine {out['machine_cores']:.2f}", flush=True)
    return out


def run_ceiling(feed: StandingsFeed, channel: str, hz: float, clients: int,
                args: argparse.Namespace) -> dict[str, Any]:
    """Measure the raw pre-framed fan-out server in its own process."""
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    port = free_port()
    ramp = args.ramp_s if args.ramp_s else 10 + clients / 400
    proc = ctx.Process(target=ceiling_main, daemon=True,
                       args=(feed, channel, hz, port, ramp + args.seconds + 30, ready))
    proc.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the ceiling server did not start listening within 60 s")
        assert proc.pid is not None
        return measure("ceiling", proc.pid, None, f"ws://127.0.0.1:{port}/", channel,
                       clients, hz, args)
    finally:
        proc.terminate()
        proc.join(10)


class Producer(threading.Thread):
    """Produces the feed to ``standings.v1``: a snapshot, then an update per tick."""

    seq = 0  # one counter across phases: seq never goes backwards for the race

    def __init__(self, bootstrap: str, feed: StandingsFeed, hz: float) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.feed, self.hz = bootstrap, feed, hz
        self.halt = threading.Event()
        self.sent = 0
        self.error: str | None = None
        self.kafka_hop = Histogram()  # produce -> a plain consumer reads it back

    def run(self) -> None:
        try:
            asyncio.run(self.produce())
        except Exception as exc:  # reported with the figures, never silently lost
            self.error = repr(exc)

    async def probe(self) -> None:
        """Read ``standings.v1`` back like the broadcaster does: the Kafka hop's latency."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False)
        await consumer.start()
        tp = TopicPartition(STANDINGS, 0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        try:
            while not self.halt.is_set():
                batch = await consumer.getmany(tp, timeout_ms=500)
                now = time.time() * 1000
                for msg in batch.get(tp, []):
                    m = GENERATED.search(msg.value or b"")
                    if m is not None:
                        self.kafka_hop.add(now - int(m.group(1)))
        finally:
            await consumer.stop()

    async def produce(self) -> None:
        from aiokafka import AIOKafkaProducer

        probe = asyncio.create_task(self.probe())

        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=0,
                                    max_request_size=8 * 2**20)
        await producer.start()
        key = self.feed.race.encode()
        try:
            stamper = Stamper(self.feed, Producer.seq)
            snap = stamper.snapshot(int(time.time() * 1000))
            await producer.send_and_wait(STANDINGS, orjson.dumps(snap), key=key)
            i, start = 0, time.monotonic()
            while not self.halt.is_set():
                i += 1
                await asyncio.sleep(max(0.0, start + i / self.hz - time.monotonic()))
                rec = stamper.update(int(time.time() * 1000))
                await producer.send_and_wait(STANDINGS, orjson.dumps(rec), key=key)
                Producer.seq = stamper.seq
                self.sent += 1
        finally:
            await producer.stop()
            await probe


async def wait_snapshot(url: str, channel: str, proc: subprocess.Popen[bytes],
                        timeout_s: float) -> int:
    """Subscribe once and wait for a standings snapshot with data; return its seq.

    Raises RuntimeError when the broadcaster exits first (its log says why).
    """
    from websockets.asyncio.client import connect

    async with asyncio.timeout(timeout_s):
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the broadcaster exited with {proc.returncode}: see its log")
            try:
                async with connect(url, compression=None) as ws:
                    await ws.send(orjson.dumps({"op": "subscribe", "channel": channel}).decode())
                    async for raw in ws:
                        msg = orjson.loads(raw)
                        if msg.get("type") == "snapshot" and msg.get("seq", 0) > 0:
                            return int(msg["seq"])
            except OSError:
                await asyncio.sleep(0.5)


def run_broadcaster(feed: StandingsFeed, channel: str, hz: float, clients: int,
                    bootstrap: str, broker_pid: int | None,
                    args: argparse.Namespace) -> dict[str, Any]:
    """Measure ``zegama-live broadcast`` fed through the broker at ``hz``."""
    producer = Producer(bootstrap, feed, hz)
    producer.start()
    ws_port, http_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "zegama_live.cli", "broadcast", "--host", "127.0.0.1",
           "--ws-port", str(ws_port), "--http-port", str(http_port), "--bootstrap", bootstrap,
           "--race", str(args.race), *args.broadcast_arg]
    log = open(args.log_dir / f"broadcast-{clients}-{hz:g}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"ws://127.0.0.1:{ws_port}/"
    try:
        seq = asyncio.run(wait_snapshot(url, channel, proc, 90))
        print(f"  broadcaster pid {proc.pid} serving {channel} (snapshot seq {seq})")
        time.sleep(2)  # let the test subscription's memory settle before the baseline
        out = measure("broadcaster", proc.pid, broker_pid, url, channel, clients, hz, args)
        out["records_produced"] = producer.sent
        out["producer_error"] = producer.error
        out["kafka_hop_ms"] = producer.kafka_hop.summary()
        print(f"  kafka hop (produce -> consumer) p50 {producer.kafka_hop.percentile(0.5):.0f} ms "
              f"p99 {producer.kafka_hop.percentile(0.99):.0f} ms", flush=True)
        return out
    finally:
        producer.halt.set()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        producer.join(10)
        log.close()


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    """One line per goal and configuration: reached or not, with the figure."""
    lines = []
    ceil = {(r["clients"], r["hz"]): r for r in results if r["server"] == "ceiling"}
    for r in results:
        if r["server"] != "broadcaster":
            continue
        c = ceil.get((r["clients"], r["hz"]))
        tag = f"{r['clients']} clients at {r['hz']:g} Hz"
        if c:
            share = r["frames_per_core_s"] / c["frames_per_core_s"]
            lines.append(f"{tag}: {share:.0%} of the ceiling's frames per core-second "
                         f"(goal >= {GOAL_SHARE:.0%}): "
                         f"{'reached' if share >= GOAL_SHARE else 'NOT reached'}")
        delivered = r["frames_per_s"] / max(1.0, r["expected_frames_per_s"])
        p99 = r["tick_latency_ms"]["p99"]
        lines.append(f"{tag}: tick-to-client p99 {p99:.0f} ms (goal <= {GOAL_P99_MS:.0f}), "
                     f"{delivered:.0%} of due frames delivered: "
                     f"{'reached' if p99 <= GOAL_P99_MS and delivered >= 0.99 else 'NOT reached'}")
        kib = r["kib_per_connection"]
        lines.append(f"{tag}: {kib:.1f} KiB per connection (goal <= {GOAL_KIB:.0f}): "
                     f"{'reached' if kib <= GOAL_KIB else 'NOT reached'}")
    return lines


def _raw_clients(port: int, clients: int, seconds: float, q: Any) -> None:
    """Client-cost probe: the swarm's raw-protocol spectators in this process."""
    from loadtest.swarm_worker import Worker, WorkerPlan, raise_open_files_limit

    raise_open_files_limit()
    frames = [0]

    class Sink:  # the worker's per-second tallies, summed here instead of sent to a parent
        def put(self, msg: Any) -> None:
            if msg[0] == "second":
                frames[0] += msg[3].frames

    start = time.time() + 0.5
    plan = WorkerPlan(0, "127.0.0.1", port, "/", b'{"op":"subscribe","channel":"c"}', clients,
                      1, 0, start, start + seconds)
    asyncio.run(Worker(plan).run(Sink()))  # type: ignore[arg-type]
    t = os.times()
    q.put((frames[0], t.user + t.system))


def _library_clients(port: int, clients: int, seconds: float, q: Any) -> None:
    """Client-cost probe: one ``websockets`` client connection (and task) per spectator."""
    from websockets.asyncio.client import connect

    from loadtest.swarm_worker import raise_open_files_limit

    raise_open_files_limit()
    frames = [0]

    async def one() -> None:
        async with connect(f"ws://127.0.0.1:{port}/", compression=None, max_size=None,
                           ping_interval=None) as ws:
            await ws.send('{"op":"subscribe","channel":"c"}')
            async for msg in ws:
                frames[0] += 1
                raw = msg.encode() if isinstance(msg, str) else msg
                GENERATED.search(raw, 0, 4096)  # the same per-frame work as the swarm

    async def run() -> None:
        tasks = [asyncio.create_task(one()) for _ in range(clients)]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())
    t = os.times()
    q.put((frames[0], t.user + t.system))


def client_cost(feed: StandingsFeed, clients: int, hz: float, seconds: float) -> dict[str, Any]:
    """CPU per received frame of the swarm's clients against ``websockets`` clients, each
    in one process against the ceiling server (connects included)."""
    ctx = mp.get_context("spawn")
    out: dict[str, Any] = {}
    for name, target in (("raw", _raw_clients), ("websockets", _library_clients)):
        ready, q = ctx.Event(), ctx.Queue()
        port = free_port()
        server = ctx.Process(target=ceiling_main, daemon=True,
                             args=(feed, "c", hz, port, seconds + 30, ready))
        server.start()
        try:
            ready.wait(60)
            client = ctx.Process(target=target, args=(port, clients, seconds, q))
            client.start()
            frames, cpu = q.get(timeout=seconds + 120)
            client.join(10)
        finally:
            server.terminate()
            server.join(10)
        out[name] = {"clients": clients, "hz": hz, "frames": frames, "cpu_s": cpu,
                     "us_per_frame": cpu / max(1, frames) * 1e6}
        print(f"client cost, {name:10}: {clients} clients at {hz:g} Hz for {seconds:g} s: "
              f"{frames:,} frames, {cpu:.2f} CPU s -> {cpu / max(1, frames) * 1e6:.1f} us per "
              "frame", flush=True)
    return out


def start_broker() -> tuple[kafka_local.LocalKafka, int | None]:
    port = free_port()
    while True:  # the controller listens on port + 1
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
                break
            except OSError:
                port = free_port()
    broker = kafka_local.LocalKafka(home=REPO / "var" / "kafka-bench-broadcast", port=port,
                                    controller_port=port + 1)
    shutil.rmtree(broker.home, ignore_errors=True)
    print(kafka_local.start(broker), flush=True)
    print(f"topics created: {', '.join(kafka_local.create_topics(broker)) or 'none'}", flush=True)
    return broker, kafka_local.running_pid(broker)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[5000])
    parser.add_argument("--rates", type=float, nargs="+", default=[1.0, 2.0],
                        help="standings records per second")
    parser.add_argument("--seconds", type=int, default=20, help="steady window per phase")
    parser.add_argument("--ramp-s", type=float, default=0.0,
                        help="time given to connect (default 10 s + 1 s per 400 clients)")
    parser.add_argument("--processes", type=int, default=2, help="swarm worker processes")
    parser.add_argument("--top", type=int, default=None, help="subscribe with top N")
    parser.add_argument("--parse-every", type=int, default=100)
    parser.add_argument("--race", type=Path, default=REPO / "races" / "zegama-2026")
    parser.add_argument("--runners", type=int, default=500)
    parser.add_argument("--at-min", type=float, default=90.0,
                        help="race minute of the board (the field spread over the course)")
    parser.add_argument("--ceiling-only", action="store_true",
                        help="measure the raw ceiling only (no broker, no broadcaster)")
    parser.add_argument("--broadcaster-only", action="store_true",
                        help="measure the broadcaster only (to profile it; no verdicts)")
    parser.add_argument("--broadcast-arg", action="append", default=[],
                        help="extra argument for zegama-live broadcast (repeat)")
    parser.add_argument("--client-cost", type=int, default=0, metavar="N",
                        help="only compare the swarm's client with websockets clients: N "
                             "clients in one process against the ceiling, at the first rate")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    args.log_dir = REPO / "var" / "bench-broadcast"
    args.log_dir.mkdir(parents=True, exist_ok=True)
    print(f"code {code_version()}, {os.cpu_count()} cores shared by broker, server and swarm, "
          f"Python {sys.version.split()[0]}", flush=True)
    feeds: dict[float, StandingsFeed] = {}
    for hz in args.rates:
        t0 = time.perf_counter()
        feeds[hz] = simulate_feed(args.race, args.runners, at_min=args.at_min,
                                  tick_ms=int(1000 / hz), ticks=int(60 * hz))
        sizes = sorted(len(orjson.dumps(u)) for u in feeds[hz].updates)
        print(f"feed at {hz:g} Hz: snapshot {len(orjson.dumps(feeds[hz].snapshot)):,} B, "
              f"update median {sizes[len(sizes) // 2]:,} B (built in "
              f"{time.perf_counter() - t0:.0f} s)", flush=True)
    if args.client_cost:
        cost = client_cost(feeds[args.rates[0]], args.client_cost, args.rates[0], args.seconds)
        if args.out:
            args.out.write_bytes(orjson.dumps({"code": code_version(), "client_cost": cost},
                                              option=orjson.OPT_INDENT_2))
        return 0
    results: list[dict[str, Any]] = []
    broker, broker_pid = (None, None) if args.ceiling_only else start_broker()
    try:
        for clients in args.clients:
            for hz in args.rates:
                feed = feeds[hz]
                channel = f"standings:{feed.race}"
                if not args.broadcaster_only:
                    results.append(run_ceiling(feed, channel, hz, clients, args))
                if broker is not None:
                    results.append(run_broadcaster(feed, channel, hz, clients,
                                                   broker.bootstrap, broker_pid, args))
    finally:
        if broker is not None:
            print(kafka_local.stop(broker))
            shutil.rmtree(broker.home, ignore_errors=True)
    lines = verdicts(results)
    print("\n".join(lines))
    if args.out:
        args.out.write_bytes(orjson.dumps(
            {"code": code_version(), "cores": os.cpu_count(), "argv": sys.argv[1:],
             "results": results, "verdicts": lines},
            option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return 0


if __name__ == "__main__":
    sys.exit(main())
