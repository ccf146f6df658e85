"""The device fleet: R runners moving along the real course, sending fixes to ingest.

A share of the devices sends JSON batches to ``POST /v1/pings`` (grouped per tick as a
gateway would: at most ``batch_max`` fixes a request), the rest send OsmAnd single
fixes as Traccar Client does. Every fix is stamped with its send wall time, so a
consumer further down computes end-to-end latency as ``receive time - fix time``.

The fleet runs in ``processes`` separate OS processes (the load generator must not
share a core's event loop with what it measures); each reports one summary a second on
a queue. Everything is bounded in time and speaks to loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TICK_S = 0.1  # scheduling granularity: a device is due at most 100 ms late
MAX_IN_FLIGHT = 2000  # per process; beyond it the generator is the bottleneck and says so


@dataclass(frozen=True)
class Device:
    """One runner's tracker: which protocol it speaks and how it moves."""

    device: str
    bib: str
    batch: bool  # JSON batch API (True) or OsmAnd single fixes (False)
    speed_mps: float
    phase_s: float  # offset of its first fix inside the interval, spreads the load


@dataclass(frozen=True)
class FleetPlan:
    """What one fleet process does; picklable so it crosses to a spawned process."""

    devices: tuple[Device, ...]
    race_dir: Path
    api_url: str  # http://127.0.0.1:PORT
    osmand_url: str
    key: str
    interval_s: float
    duration_s: float
    start_ms: int  # the race start (fixes before it would be at km 0 anyway)
    batch_max: int = 50


@dataclass
class SecondStats:
    """What one fleet process did in one wall-clock second."""

    second: int  # unix seconds
    requests: int = 0
    fixes: int = 0
    accepted: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # status or exception name
    latency_ms: list[float] = field(default_factory=list)  # request round trips
    behind: int = 0  # fixes not sent because MAX_IN_FLIGHT requests were pending

    def as_dict(self) -> dict[str, Any]:
        return {"second": self.second, "requests": self.requests, "fixes": self.fixes,
                "accepted": self.accepted, "errors": dict(self.errors),
                "latency_ms": self.latency_ms, "behind": self.behind}


def make_devices(entrants: list[tuple[str, str]], *, batch_share: float,
                 interval_s: float, seed: int = 7) -> tuple[Device, ...]:
    """Devices for ``(bib, device id)`` pairs: speeds of 2.2-4.2 m/s, phases spread.

    Raises ValueError when ``batch_share`` is outside 0..1 or ``interval_s`` is not positive.
    """
    if not 0.0 <= batch_share <= 1.0:
        raise ValueError(f"batch share {batch_share} must be within 0..1 (e.g. 0.3)")
    if interval_s <= 0:
        raise ValueError(f"interval {interval_s} s must be positive")
    rng = random.Random(seed)
    n_batch = round(len(entrants) * batch_share)
    return tuple(
        Device(device=dev, bib=bib, batch=i < n_batch, speed_mps=rng.uniform(2.2, 4.2),
               phase_s=rng.uniform(0.0, interval_s))
        for i, (bib, dev) in enumerate(entrants)
    )


def split(devices: tuple[Device, ...], parts: int) -> list[tuple[Device, ...]]:
    """Deal devices round-robin into ``parts`` non-empty shares (fewer if too few devices)."""
    parts = max(1, min(parts, len(devices)))
    return [devices[i::parts] for i in range(parts)]


def due(devices: tuple[Device, ...], interval_s: float, t0: float, t: float) -> list[Device]:
    """Devices whose next fix falls in the tick ``[t - TICK_S, t)`` seconds after ``t0``."""
    out = []
    lo, hi = t - t0 - TICK_S, t - t0
    for d in devices:
        # the latest send time k*interval + phase (k >= 0) before hi
        k = (hi - d.phase_s) // interval_s
        if k >= 0 and k * interval_s + d.phase_s >= lo:
            out.append(d)
    return out


def osmand_query(device: Device, lat: float, lon: float, ele: float, t_ms: int,
                 key: str) -> dict[str, str]:
    """The query string Traccar Client sends (timestamp in ms for latency precision)."""
    return {"id": device.device, "lat": f"{lat:.6f}", "lon": f"{lon:.6f}",
            "altitude": f"{ele:.1f}", "timestamp": str(t_ms), "accuracy": "6",
            "speed": f"{device.speed_mps / 0.514444:.2f}", "batt": "80", "key": key}


def json_fix(device: Device, lat: float, lon: float, ele: float, t_ms: int) -> dict[str, Any]:
    """One fix of the device JSON format of ``POST /v1/pings``."""
    return {"device": device.device, "ts": t_ms, "lat": round(lat, 6), "lon": round(lon, 6),
            "ele": round(ele, 1), "acc": 6.0, "bat": 0.8}


def run_process(plan: FleetPlan, queue: Any) -> None:
    """Entry point of one fleet process: send until the duration is over."""
    asyncio.run(_run(plan, queue))


async def _run(plan: FleetPlan, queue: Any) -> None:
    import aiohttp

    from race_engine.racefolder import load_course

    course = load_course(plan.race_dir / "course.gpx")
    stats: dict[int, SecondStats] = {}
    pending: set[asyncio.Task[None]] = set()

    def bucket() -> SecondStats:
        s = int(time.time())
        return stats.setdefault(s, SecondStats(second=s))

    def where(d: Device, now_ms: int) -> tuple[float, float, float]:
        progress = max(0.0, (now_ms - plan.start_ms) / 1000.0) * d.speed_mps
        lat, lon = course.position_at(progress)
        return lat, lon, course.elevation_at(progress)

    async def send(session: aiohttp.ClientSession, method: str, url: str, n: int,
                   **kw: Any) -> None:
        began = time.perf_counter()
        status = "0"
        try:
            async with session.request(method, url, **kw) as resp:
                await resp.read()
                status = str(resp.status)
        except Exception as exc:  # a refused or reset connection is a measured error
            status = type(exc).__name__
        b = bucket()
        b.requests += 1
        b.fixes += n
        if status in ("200", "202"):
            b.accepted += n
            b.latency_ms.append(round((time.perf_counter() - began) * 1000.0, 2))
        else:
            b.errors[status] += 1

    async def send_osmand(session: aiohttp.ClientSession, d: Device) -> None:
        t_ms = int(time.time() * 1000)
        lat, lon, ele = where(d, t_ms)
        await send(session, "GET", plan.osmand_url + "/",
                   1, params=osmand_query(d, lat, lon, ele, t_ms, plan.key))

    async def send_batch(session: aiohttp.ClientSession, group: list[Device]) -> None:
        t_ms = int(time.time() * 1000)
        body = [json_fix(d, *where(d, t_ms), t_ms) for d in group]
        await send(session, "POST", plan.api_url + "/v1/pings", len(group), json=body,
                   headers={"Authorization": f"Bearer {plan.key}"})

    def launch(coro: Any, n: int) -> None:
        if len(pending) >= MAX_IN_FLIGHT:
            coro.close()
            bucket().behind += n
            return
        task = asyncio.ensure_future(coro)
        pending.add(task)
        task.add_done_callback(pending.discard)

    connector = aiohttp.TCPConnector(limit=256, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.time()
        next_tick = t0 + TICK_S
        last_flush = int(t0)
        while (now := time.time()) < t0 + plan.duration_s:
            batch_group = []
            for d in due(plan.devices, plan.interval_s, t0, now):
                if d.batch:
                    batch_group.append(d)
                else:
                    launch(send_osmand(session, d), 1)
            for i in range(0, len(batch_group), plan.batch_max):
                group = batch_group[i:i + plan.batch_max]
                launch(send_batch(session, group), len(group))
            last_flush = _flush(stats, queue, int(now), last_flush)
            next_tick += TICK_S
            await asyncio.sleep(max(0.0, next_tick - time.time()))
        if pending:
            await asyncio.wait(pending, timeout=10)
        for task in pending:
            task.cancel()
    _flush(stats, queue, int(time.time()) + 2, last_flush)
    with contextlib.suppress(Exception):
        queue.put({"done": True})


def _flush(stats: dict[int, SecondStats], queue: Any, now_s: int, last: int) -> int:
    """Put every finished second (older than now) on the queue; return the new mark."""
    if now_s <= last:
        return last
    for s in sorted(k for k in stats if k < now_s):
        queue.put(stats.pop(s).as_dict())
    return now_s


def start_fleet(plans: list[FleetPlan]) -> tuple[list[Any], Any]:
    """Start one spawned process per plan; return the processes and their shared queue."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=run_process, args=(p, queue), name=f"fleet-{i}", daemon=True)
             for i, p in enumerate(plans)]
    for p in procs:
        p.start()
    return procs, queue


def prepare_race(src: Path, dst: Path, runners: int, start_ms: int) -> list[tuple[str, str]]:
    """Write a race folder for the run under ``dst`` and return its (bib, device) pairs.

    The course and race.toml come from ``src`` with the start moved to ``start_ms`` (so
    fixes stamped now fall inside the race); the first entrants are the real ones, and
    synthetic ``LT-NNNNN`` devices make up fields larger than entrants.csv.

    Raises ValueError when ``runners`` is not positive or ``src`` lacks a race file.
    """
    import csv
    import datetime as dt
    import re
    import shutil

    if runners <= 0:
        raise ValueError(f"runners={runners}: the fleet needs at least one runner")
    for name in ("course.gpx", "race.toml", "entrants.csv"):
        if not (src / name).is_file():
            raise ValueError(f"{src / name} is missing: --race must be a race folder")
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "course.gpx", dst / "course.gpx")
    from zoneinfo import ZoneInfo

    text = (src / "race.toml").read_text(encoding="utf-8")
    tz = re.search(r'(?m)^timezone\s*=\s*"(.+)"', text)
    zone = ZoneInfo(tz.group(1)) if tz else dt.UTC
    start = dt.datetime.fromtimestamp(start_ms / 1000, zone).isoformat(timespec="seconds")
    toml = re.sub(r'(?m)^start\s*=\s*".*"$', f'start = "{start}"', text, count=1)
    (dst / "race.toml").write_text(toml, encoding="utf-8")
    with open(src / "entrants.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("device")]
    fields = ["bib", "name", "sex", "category", "country", "device"]
    out = [{k: r.get(k, "") for k in fields} for r in rows[:runners]]
    for i in range(len(out), runners):
        n = i + 1
        out.append({"bib": str(10000 + n), "name": f"Load Runner {n}", "sex": "M",
                    "category": "SEN", "country": "ES", "device": f"LT-{n:05d}"})
    with open(dst / "entrants.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(out)
    return [(r["bib"], r["device"]) for r in out]
