"""What the load test watches while it runs, once a second.

``Sampler`` reads CPU (percent of one core) and resident memory of every process under
test and every load generator with psutil, in a thread of the controlling process.
``run_probe`` is a separate process reading Kafka: the latency from a fix's send time
to its record on ``pings.v1`` (ingest to Kafka) and to the first ``runner-updates.v1``
card showing it (through the processors), and the lag of every consumer group.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import orjson
import psutil

PROBE_TOPICS = ("pings.v1", "runner-updates.v1")
MACHINE = "machine"  # the sample name of the whole machine's CPU and memory


class Sampler(threading.Thread):
    """CPU and memory of named processes, one sample per second each."""

    def __init__(self, period_s: float = 1.0) -> None:
        super().__init__(name="sampler", daemon=True)
        self.period_s = period_s
        self.samples: list[dict[str, Any]] = []  # {t, name, role, cpu, rss_mb}
        self._procs: dict[str, tuple[str, psutil.Process]] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def watch(self, name: str, pid: int, role: str) -> None:
        """Sample ``pid`` (and its children) as ``name``; role: 'under test' or 'load'."""
        try:
            p = psutil.Process(pid)
            p.cpu_percent(None)  # the first call only sets the baseline
        except psutil.Error:
            return
        with self._lock:
            self._procs[name] = (role, p)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._procs)

    def run(self) -> None:
        cores = psutil.cpu_count() or 1
        psutil.cpu_percent(None)
        while not self._halt.wait(self.period_s):
            t = time.time()
            # the whole machine, in the same unit (% of one core): shows what else ran
            self.samples.append({"t": round(t, 3), "name": MACHINE, "role": "machine",
                                 "cpu": round(psutil.cpu_percent(None) * cores, 1),
                                 "rss_mb": round(psutil.virtual_memory().used / 2**20, 1),
                                 "load1": round(psutil.getloadavg()[0], 2)})
            with self._lock:
                procs = list(self._procs.items())
            for name, (role, p) in procs:
                try:
                    cpu = p.cpu_percent(None)
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue  # exited: its last samples stay
                self.samples.append({"t": round(t, 3), "name": name, "role": role,
                                     "cpu": round(cpu, 1), "rss_mb": round(rss / 2**20, 1)})

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def latest(self) -> dict[str, dict[str, Any]]:
        """The most recent sample of each process."""
        out: dict[str, dict[str, Any]] = {}
        for s in self.samples[-4 * max(1, len(self._procs)):]:
            out[s["name"]] = s
        return out


def run_probe(bootstrap: str, queue: Any, duration_s: float) -> None:
    """Entry point of the probe process: put one summary a second on ``queue``."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_probe(bootstrap, queue, duration_s))


async def _probe(bootstrap: str, queue: Any, duration_s: float) -> None:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    consumer = AIOKafkaConsumer(*PROBE_TOPICS, bootstrap_servers=bootstrap,
                                auto_offset_reset="latest", enable_auto_commit=False,
                                group_id=None)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    seen: dict[str, int] = {}  # bib -> newest last_fix_ms already counted
    current = {"second": int(time.time()), "pings_ms": [], "updates_ms": [], "lag": {}}
    end = time.time() + duration_s
    next_lag = 0.0
    try:
        while time.time() < end:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            now_ms = time.time() * 1000.0
            for tp, records in batches.items():
                for r in records:
                    _measure(tp.topic, r.value, now_ms, seen, current)
            if time.time() >= next_lag:
                next_lag = time.time() + 2.0
                with contextlib.suppress(Exception):
                    current["lag"] = await _lags(admin, consumer)
            if int(time.time()) > current["second"]:
                queue.put(current)
                current = {"second": int(time.time()), "pings_ms": [], "updates_ms": [],
                           "lag": current["lag"]}
    finally:
        await consumer.stop()
        await admin.close()
        queue.put({"done": True})


def _measure(topic: str, value: bytes | None, now_ms: float, seen: dict[str, int],
             out: dict[str, Any]) -> None:
    """Add one record's latency to ``out``; undecodable records are skipped."""
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return
    if topic == "pings.v1":
        t = doc.get("t")
        if isinstance(t, int):
            out["pings_ms"].append(round(now_ms - t, 1))
        return
    card = doc.get("card") or {}
    bib, fix = str(doc.get("bib", "")), card.get("last_fix_ms")
    # a card also changes when a rank or gap moves: count each fix once, when first shown
    if isinstance(fix, int) and fix > seen.get(bib, 0):
        seen[bib] = fix
        out["updates_ms"].append(round(now_ms - fix, 1))


async def _lags(admin: Any, consumer: Any) -> dict[str, int]:
    """Records behind the end of each partition, summed per consumer group."""
    out: dict[str, int] = {}
    for group, *_ in await admin.list_consumer_groups():
        offsets = await admin.list_consumer_group_offsets(group)
        if not offsets:
            continue
        ends = await consumer.end_offsets(list(offsets))
        out[group] = sum(max(0, ends[tp] - meta.offset) for tp, meta in offsets.items()
                         if meta.offset >= 0)
    return out
