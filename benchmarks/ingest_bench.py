"""Ingest throughput: fixes/s one ingest process gets acknowledged by the local broker.

Starts a broker of its own (``var/kafka-bench``, free ports; ``--bootstrap`` to use a
running one instead), a race of 500 devices, and one ``zegama-live ingest`` process.
Then measures, from a separate load-generating process:

1. the batch API: batches of ``--batch`` fixes, ``--batch-concurrency`` requests in flight;
2. the OsmAnd port: one fix per request, ``--osmand-concurrency`` requests in flight;
3. the broker's ceiling for the same records: a raw aiokafka loop (acks=all, idempotent).

Prints fixes/s and p50/p99 request latency of each. Run::

    .venv/bin/python benchmarks/ingest_bench.py --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from race_engine.model import Fix  # noqa: E402
from zegama_live import kafka_local  # noqa: E402
from zegama_live.records import PingRecord, encode_ping  # noqa: E402
from zegama_live.topics import PINGS, runner_key  # noqa: E402

KEY = "bench-key"
DEVICES = 500
T0 = 1_779_001_200_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_race(folder: Path) -> None:
    rows = ["bib,name,sex,category,country,device,emergency_phone"]
    rows += [f"{i},Runner {i},M,SEN,ES,BENCH-{i:04d},+34 555 0000" for i in range(1, DEVICES + 1)]
    (folder / "entrants.csv").write_text("\n".join(rows) + "\n")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Counter:
    def __init__(self) -> None:
        self.n = 0


async def batch_load(url: str, batch: int, concurrency: int, seconds: float
                     ) -> tuple[int, list[float], int]:
    """(fixes acknowledged, request latencies in s, non-202 answers)."""
    latencies: list[float] = []
    fixes, errors, seq = Counter(), Counter(), Counter()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            seq.n += 1
            body = orjson.dumps([
                {"device": f"BENCH-{(seq.n * batch + i) % DEVICES + 1:04d}",
                 "ts": T0 + seq.n * 1000 + i, "lat": 42.95, "lon": -2.33, "ele": 1200.0,
                 "acc": 8.0, "bat": 0.8} for i in range(batch)])
            began = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                ok = resp.status == 202
            latencies.append(time.perf_counter() - began)
            if ok:
                fixes.n += batch
            else:
                errors.n += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
    return fixes.n, latencies, errors.n


async def osmand_load(url: str, concurrency: int, seconds: float
                      ) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    fixes, errors, seq = Counter(), Counter(), Counter()
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            seq.n += 1
            query = (f"?id=BENCH-{seq.n % DEVICES + 1:04d}&lat=42.95&lon=-2.33&altitude=1200"
                     f"&speed=5.2&bearing=181&accuracy=8&batt=80"
                     f"&timestamp={(T0 + seq.n) // 1000}&key={KEY}")
            began = time.perf_counter()
            async with session.get(url + query) as resp:
                await resp.read()
                ok = resp.status == 200
            latencies.append(time.perf_counter() - began)
            if ok:
                fixes.n += 1
            else:
                errors.n += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
    return fixes.n, latencies, errors.n


async def raw_ceiling(bootstrap: str, seconds: float, chunk: int = 1000) -> int:
    """Records/s of a bare aiokafka loop sending the same records, waiting for acks."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=2,
                                max_batch_size=512 * 1024)
    await producer.start()
    sent = 0
    try:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            futures = []
            for i in range(chunk):
                bib = str((sent + i) % DEVICES + 1)
                fix = Fix(f"BENCH-{int(bib):04d}", T0 + sent + i, 42.95, -2.33, 1200.0, 8.0, 0.8)
                value = encode_ping(PingRecord("bench-raw", bib, fix, T0, "batch",
                                               raw={"device": fix.device, "ts": fix.t}))
                futures.append(await producer.send(PINGS, value,
                                                   key=runner_key("bench-raw", bib)))
            await asyncio.gather(*futures)
            sent += chunk
    finally:
        await producer.stop()
    return sent


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuShares:
    """CPU used by ingest, the broker and this load generator between two marks."""

    def __init__(self, ingest_pid: int, broker_pid: int | None) -> None:
        self.pids = {"ingest": ingest_pid, "broker": broker_pid}
        self.mark()

    def _now(self) -> dict[str, float]:
        own = os.times()
        now = {"load": own.user + own.system}
        for name, pid in self.pids.items():
            now[name] = cpu_seconds(pid) if pid else float("nan")
        return now

    def mark(self) -> None:
        self.start = self._now()

    def used(self) -> dict[str, float]:
        end = self._now()
        used = {k: end[k] - self.start[k] for k in end}
        self.start = end
        return used


def report(name: str, fixes: int, latencies: list[float], errors: int, seconds: float,
           cpu: dict[str, float]) -> None:
    print(f"{name:<24} {fixes / seconds:>8,.0f} fixes/s {len(latencies) / seconds:>6,.0f} req/s"
          f"  p50 {percentile(latencies, 0.5) * 1000:5.1f} ms"
          f"  p99 {percentile(latencies, 0.99) * 1000:5.1f} ms  non-2xx {errors}")
    print(f"{'':<24} CPU: ingest {cpu['ingest'] / seconds:4.0%}"
          f" ({cpu['ingest'] * 1e6 / max(fixes, 1):.0f} us/fix),"
          f" broker {cpu['broker'] / seconds:4.0%}, load generator {cpu['load'] / seconds:4.0%}")


def start_ingest(race: Path, bootstrap: str, port: int, osmand_port: int
                 ) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ZEGAMA_INGEST_KEY": KEY, "ZEGAMA_KAFKA_BOOTSTRAP": bootstrap}
    cmd = [sys.executable, "-m", "zegama_live.cli", "ingest", "--race-dir", str(race),
           "--host", "127.0.0.1", "--port", str(port), "--osmand-port", str(osmand_port),
           "--max-future-s", "1e9"]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def wait_healthy(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"ingest not healthy at {url} within {timeout_s} s")


async def measure(args: argparse.Namespace, bootstrap: str, broker_pid: int | None) -> None:
    race = Path(tempfile.mkdtemp(prefix="bench-race-")) / "bench"
    race.mkdir()
    write_race(race)
    port, osmand_port = free_port(), free_port()
    ingest = start_ingest(race, bootstrap, port, osmand_port)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}/healthz")
        await batch_load(f"http://127.0.0.1:{port}/v1/pings", args.batch, 4, 1.0)  # warm up
        s = args.seconds
        cpu = CpuShares(ingest.pid, broker_pid)
        fixes, lat, err = await batch_load(f"http://127.0.0.1:{port}/v1/pings", args.batch,
                                           args.batch_concurrency, s)
        report(f"batch API, {args.batch}/req, c={args.batch_concurrency}", fixes, lat, err, s,
               cpu.used())
        fixes, lat, err = await osmand_load(f"http://127.0.0.1:{osmand_port}/",
                                            args.osmand_concurrency, s)
        report(f"OsmAnd, 1/req, c={args.osmand_concurrency}", fixes, lat, err, s, cpu.used())
    finally:
        ingest.terminate()
        ingest.wait(30)
        shutil.rmtree(race.parent, ignore_errors=True)
    cpu = CpuShares(os.getpid(), broker_pid)
    sent = await raw_ceiling(bootstrap, args.seconds)
    used = cpu.used()
    print(f"{'raw aiokafka loop':<24} {sent / args.seconds:>8,.0f} fixes/s")
    print(f"{'':<24} CPU: producer loop {used['load'] / args.seconds:4.0%}"
          f" ({used['load'] * 1e6 / max(sent, 1):.0f} us/fix),"
          f" broker {used['broker'] / args.seconds:4.0%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--batch", type=int, default=100, help="fixes per batch request")
    parser.add_argument("--batch-concurrency", type=int, default=8)
    parser.add_argument("--osmand-concurrency", type=int, default=64)
    parser.add_argument("--bootstrap", help="use this running broker instead of starting one")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    if args.bootstrap:
        asyncio.run(measure(args, args.bootstrap, None))
        return 0
    port = free_port()
    while True:  # the controller listens on port + 1
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
                break
            except OSError:
                port = free_port()
    broker = kafka_local.LocalKafka(home=REPO / "var" / "kafka-bench", port=port,
                                    controller_port=port + 1)
    shutil.rmtree(broker.home, ignore_errors=True)
    print(kafka_local.start(broker))
    try:
        broker_pid = int(broker.pid_file.read_text().strip())
        asyncio.run(measure(args, broker.bootstrap, broker_pid))
    finally:
        print(kafka_local.stop(broker))
        shutil.rmtree(broker.home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
