"""The spectator swarm: N websocket clients over P processes, measured every second.

Each client connects to a broadcaster on this machine, subscribes to one channel
(``standings:<race>`` by default, optionally ``top`` N rows) and, per frame received,
measures the tick-to-client latency of updates (receive wall time - the frame's
``generated_ms``; snapshots are counted, not timed: they carry the state's time).
One client in ``parse_every`` also decodes the rows and measures the end-to-end latency
of every row whose ``last_fix_ms`` changed (now - ``last_fix_ms``: meaningful when the
fixes were stamped with their send time, as the load test does). Counts per second:
connects (and connect time), frames, bytes, snapshots and updates, error frames,
disconnects by close code. The run is bounded: at most 20,000 clients, loopback only,
and every worker stops at the deadline by itself. Run::

    .venv/bin/python -m loadtest.swarm --url ws://127.0.0.1:8765/ \\
        --channel standings:zegama-2026 --clients 2000 --processes 2 --seconds 30
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import multiprocessing as mp
import queue as queue_mod
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from loadtest.swarm_client import Tally
from loadtest.swarm_worker import WorkerPlan, raise_open_files_limit, worker_main

MAX_CLIENTS = 20_000
MAX_SECONDS = 3_600
FD_MARGIN = 32  # the worker's own files: its queue pipe, the event loop, stdio


class SwarmError(ValueError):
    """The swarm cannot run as asked (bad URL, limits too low); the message says what to do."""


@dataclass(frozen=True, slots=True)
class SecondStats:
    """Everything the workers counted during second ``second`` of the run."""

    second: int
    tally: Tally

    def line(self) -> str:
        """One line of live progress."""
        t = self.tally
        return (f"{self.second:4d}s open {t.open:6d} +conn {t.connects:5d} "
                f"frames/s {t.frames:7d} MB/s {t.bytes / 1e6:7.1f} "
                f"tick p50 {t.tick.percentile(0.5):7.1f} p99 {t.tick.percentile(0.99):7.1f} ms "
                f"disc {sum(t.disconnects.values())} fail {sum(t.connect_failures.values())}")


@dataclass(slots=True)
class SwarmResult:
    """The run: per-second stats in order, their total, and any worker failure."""

    clients: int
    processes: int
    duration_s: float
    start_wall: float = 0.0  # second k of the run is [start_wall + k, start_wall + k + 1)
    seconds: list[SecondStats] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> Tally:
        return self.window(0, len(self.seconds))

    def window(self, first: int, end: int) -> Tally:
        """The merged tally of seconds ``first`` <= s < ``end``; ``open`` is the last one's."""
        merged = Tally()
        last_open = 0
        for s in self.seconds:
            if first <= s.second < end:
                merged.merge(s.tally)
                last_open = s.tally.open
        merged.open = last_open
        return merged

    def to_dict(self, first: int = 0, end: int | None = None) -> dict[str, Any]:
        """A JSON-able summary of the window (the whole run by default)."""
        end = len(self.seconds) if end is None else end
        t = self.window(first, end)
        span = max(1, min(end, len(self.seconds)) - first)
        return {
            "clients": self.clients, "processes": self.processes,
            "window_s": [first, end], "open_at_end": t.open,
            "connects": t.connects, "connect_failures": t.connect_failures,
            "frames": t.frames, "frames_per_s": t.frames / span,
            "bytes_per_s": t.bytes / span, "snapshots": t.snapshots, "updates": t.updates,
            "error_frames": t.error_frames,
            "disconnects": {str(k): v for k, v in t.disconnects.items()},
            "tick_latency_ms": t.tick.summary(), "e2e_latency_ms": t.e2e.summary(),
            "connect_ms": t.connect.summary(), "worker_failures": self.failures,
        }


def parse_url(url: str) -> tuple[str, int, str]:
    """(host, port, path) of a ``ws://`` URL on this machine.

    Raises SwarmError for another scheme or a host that is not a loopback address: the
    swarm is a local load test and never points at another machine.
    """
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname:
        raise SwarmError(f"url must look like ws://127.0.0.1:8765/, got {url!r}")
    host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SwarmError(f"the swarm only connects to this machine (127.0.0.1), not {host!r}")
    return host, parts.port or 80, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def check_limits(clients: int, processes: int) -> None:
    """Raise SwarmError when this machine cannot hold ``clients`` connections.

    The open-files limit is raised to the hard limit in each worker; the hard limit and
    the local port range are what can make a run impossible.
    """
    per_worker = math.ceil(clients / processes) + FD_MARGIN
    _, hard = raise_open_files_limit()
    if hard < per_worker:
        raise SwarmError(
            f"the open-files hard limit is {hard}, a worker needs {per_worker} for "
            f"{clients} clients over {processes} processes: use more --processes or raise "
            "the limit (ulimit -Hn as root, or nofile in /etc/security/limits.conf)")
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return
    if clients > high - low:
        raise SwarmError(
            f"{clients} clients need as many local ports, the range is {low}-{high}: "
            "lower --clients or widen net.ipv4.ip_local_port_range")


def subscribe_message(channel: str, top: int | None) -> bytes:
    """The broadcaster's subscribe message (docs/websocket.md)."""
    msg: dict[str, Any] = {"op": "subscribe", "channel": channel}
    if top is not None:
        msg["top"] = top
    return orjson.dumps(msg)


def run_swarm(url: str, channel: str | None = "standings:zegama-2026", clients: int = 1000,
              processes: int = 2, duration_s: float = 30.0, *, top: int | None = None,
              parse_every: int = 100, connect_concurrency: int = 200,
              on_second: Callable[[SecondStats], None] | None = None) -> SwarmResult:
    """Run the swarm for ``duration_s`` seconds and return what it measured.

    ``channel`` None sends no subscribe message (a server that pushes on connect).
    ``on_second`` is called in this process with each second's stats, in order, once
    every worker reported that second. Raises SwarmError for a bad argument or limits
    too low for the run; a worker that crashes is reported in ``SwarmResult.failures``.
    """
    host, port, path = parse_url(url)
    if not 1 <= clients <= MAX_CLIENTS:
        raise SwarmError(f"clients must be 1..{MAX_CLIENTS}, got {clients}")
    if not 1 <= processes <= min(64, clients):
        raise SwarmError(f"processes must be 1..{min(64, clients)}, got {processes}")
    if not 1 <= duration_s <= MAX_SECONDS:
        raise SwarmError(f"duration must be 1..{MAX_SECONDS} s, got {duration_s}")
    check_limits(clients, processes)
    subscribe = None if channel is None else subscribe_message(channel, top)
    ctx = mp.get_context("spawn")  # no fork of a parent that may run its own event loop
    q: Any = ctx.Queue()
    start = time.time() + 1.0 + 0.3 * processes
    plans = [WorkerPlan(i, host, port, path, subscribe, n, first, parse_every, start,
                        start + duration_s, connect_concurrency)
             for i, (first, n) in enumerate(_shares(clients, processes))]
    procs = [ctx.Process(target=worker_main, args=(p, q), daemon=True) for p in plans]
    for p in procs:
        p.start()
    result = SwarmResult(clients, processes, duration_s, start)
    try:
        _collect(q, len(plans), start + duration_s + 30.0, result, on_second)
    finally:
        for p in procs:
            p.join(timeout=5.0)
            if p.is_alive():
                p.terminate()
                result.failures.append(f"worker {p.pid} did not stop by itself: terminated")
    return result


def _shares(clients: int, processes: int) -> list[tuple[int, int]]:
    """(first id, count) per worker, as even as possible."""
    base, extra = divmod(clients, processes)
    out, first = [], 0
    for i in range(processes):
        n = base + (1 if i < extra else 0)
        out.append((first, n))
        first += n
    return out


def _collect(q: Any, workers: int, give_up: float, result: SwarmResult,
             on_second: Callable[[SecondStats], None] | None) -> None:
    """Merge the workers' seconds; emit each second when every live worker sent it."""
    pending: dict[int, tuple[Tally, set[int]]] = {}
    live = set(range(workers))
    emitted = 0

    def emit_ready(force: bool) -> None:
        nonlocal emitted
        while emitted in pending and (force or pending[emitted][1] >= live):
            stats = SecondStats(emitted, pending.pop(emitted)[0])
            result.seconds.append(stats)
            if on_second is not None:
                on_second(stats)
            emitted += 1

    while live and time.time() < give_up:
        try:
            msg = q.get(timeout=0.5)
        except queue_mod.Empty:
            continue
        if msg[0] == "second":
            _, index, k, tally = msg
            merged, seen = pending.setdefault(k, (Tally(), set()))
            merged.merge(tally)
            seen.add(index)
        else:
            live.discard(msg[1])
            if msg[0] == "failed":
                result.failures.append(f"worker {msg[1]}: {msg[2]}")
        emit_ready(False)
    emit_ready(True)
    if live:
        result.failures.append(f"workers {sorted(live)} did not report the end in time")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.swarm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="ws://127.0.0.1:8765/")
    parser.add_argument("--channel", default="standings:zegama-2026")
    parser.add_argument("--top", type=int, default=None, help="only the first N rows")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--parse-every", type=int, default=100,
                        help="one client in N decodes rows for end-to-end latency (0: none)")
    parser.add_argument("--skip", type=int, default=5,
                        help="seconds left out of the summary at the start (connect ramp)")
    parser.add_argument("--json", default=None, help="also write the summary to this file")
    args = parser.parse_args(argv)
    try:
        result = run_swarm(args.url, args.channel, args.clients, args.processes, args.seconds,
                           top=args.top, parse_every=args.parse_every,
                           on_second=lambda s: print(s.line(), flush=True))
    except SwarmError as exc:
        print(f"swarm: {exc}", file=sys.stderr)
        return 2
    summary = result.to_dict(min(args.skip, max(0, len(result.seconds) - 1)))
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    if args.json:
        with open(args.json, "wb") as f:
            f.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
