"""``zegama-live loadtest``: the whole platform under load, on this machine.

Starts the processes under test (broker, ingest, processors and broadcaster when this
version has them) from a fresh folder, drives them with a device fleet and a spectator
swarm in separate processes, prints progress every few seconds and writes report.md,
report.json and plots into ``--out``. ``--find-limit`` steps the field at 1 fix/s
(1000, 2000, 3000, 5000, ...) until end-to-end p99 passes 1 s or errors appear.
"""

from __future__ import annotations

import argparse
import os
import queue as queues
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

from loadtest import fleet as fleets
from loadtest.report import merge_seconds, percentiles, saturated_first, write_report
from loadtest.sampler import Sampler, run_probe
from loadtest.stack import Stack, StackError

LIMIT_STEPS = (1000, 2000, 3000, 5000, 7000, 10000)
LIMIT_P99_MS = 1000.0


def _env(name: str, default: str) -> str:
    return os.environ.get(f"ZEGAMA_LOADTEST_{name}", default)


def configure(parser: argparse.ArgumentParser) -> None:
    def add(flag: str, env: str, default: str, kind: Any, text: str) -> None:
        # a string default goes through ``kind`` too: a bad variable is a clear usage error
        parser.add_argument(flag, type=kind, default=_env(env, default),
                            help=f"{text} [env ZEGAMA_LOADTEST_{env}; default {default}]")

    add("--runners", "RUNNERS", "500", int, "devices in the fleet")
    add("--interval", "INTERVAL", "5", float, "seconds between two fixes of a device")
    add("--spectators", "SPECTATORS", "0", int, "websocket spectators (needs broadcast)")
    add("--duration", "DURATION", "60", float, "seconds of load (per step with --find-limit)")
    add("--race", "RACE", "races/zegama-2026", Path, "race folder whose course is run")
    add("--batch-share", "BATCH_SHARE", "0.3", float,
        "share of devices sending JSON batches; the rest send OsmAnd single fixes")
    add("--fleet-processes", "FLEET_PROCESSES", "2", int, "processes of the device fleet")
    add("--profile-s", "PROFILE_S", "10", float, "seconds of py-spy profile (0: none)")
    add("--progress-s", "PROGRESS_S", "5", float, "seconds between progress lines")
    parser.add_argument("--out", type=Path, default=None,
                        help="run folder (default var/loadtest/<UTC time>)")
    parser.add_argument("--find-limit", action="store_true",
                        help=f"step runners at 1 fix/s through {LIMIT_STEPS} until "
                        f"p99 > {LIMIT_P99_MS:.0f} ms or errors; report the largest that held")
    for stage in ("processors", "broadcast"):
        parser.add_argument(f"--no-{stage}", dest=stage, action="store_false",
                            help=f"leave the {stage} out even when this version has them")


def _check(args: argparse.Namespace) -> str | None:
    if args.runners <= 0 or args.interval <= 0 or args.duration <= 0:
        return "--runners, --interval and --duration must be positive"
    if args.spectators < 0 or args.fleet_processes <= 0:
        return "--spectators must be >= 0 and --fleet-processes positive"
    if not 0 <= args.batch_share <= 1:
        return "--batch-share must be within 0..1 (e.g. 0.3)"
    if not (args.race / "course.gpx").is_file():
        return f"--race {args.race}: no course.gpx there; give a race folder"
    return None


def run(args: argparse.Namespace) -> int:
    problem = _check(args)
    if problem:
        print(f"zegama-live loadtest: {problem}", file=sys.stderr)
        return 2
    out = args.out or Path("var/loadtest") / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    steps = LIMIT_STEPS if args.find_limit else (args.runners,)
    interval = 1.0 if args.find_limit else args.interval
    command = "zegama-live loadtest " + shlex.join(sys.argv[2:])
    held: int | None = None
    try:
        for n in steps:
            # a fresh stack and race of exactly n entrants per step: no lag, state or
            # race size carried over from the step before
            step_out = out / f"runners-{n}" if args.find_limit else out
            summary = run_step(args, n, interval, step_out,
                               command + (f"  # step {n}" if args.find_limit else ""))
            p99 = summary["end_to_end"]["p99"]
            ok = holds(summary)
            print(f"== {n} runners every {interval:g} s: e2e p99 {p99} ms, errors "
                  f"{summary['errors'] or 'none'}: {'held' if ok else 'did not hold'}",
                  flush=True)
            if not ok:
                break
            held = n
    except StackError as exc:
        print(f"zegama-live loadtest: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the processes under test were stopped", file=sys.stderr)
        return 130
    if args.find_limit:
        (out / "limit.txt").write_text(f"largest field that held at 1 fix/s: {held}\n")
        print(f"largest field that held at 1 fix/s (p99 <= {LIMIT_P99_MS:.0f} ms, no errors): "
              f"{held}")
    return 0


def holds(summary: dict[str, Any]) -> bool:
    """Whether a step held: p99 within the limit, no errors anywhere, nothing died."""
    p99 = summary["end_to_end"]["p99"]
    sp = summary["spectators"]
    spectator_errors = bool(sp.get("error") or sp.get("connect_failures")
                            or sp.get("disconnects") or sp.get("worker_failures"))
    died = any(str(n).startswith(("died", "process: no runner-updates"))
               for n in summary["notes"])
    return (not summary["errors"] and p99 is not None and p99 <= LIMIT_P99_MS
            and summary["behind"] == 0 and not spectator_errors and not died)


def run_step(args: argparse.Namespace, runners: int, interval: float, out: Path,
             command: str) -> dict[str, Any]:
    """Start a stack for ``runners`` entrants, load it, report, and stop it (always)."""
    out.mkdir(parents=True, exist_ok=True)
    start_ms = int(time.time() * 1000)
    race_dir = out / "race" / args.race.resolve().name
    entrants = fleets.prepare_race(args.race, race_dir, runners, start_ms)
    stack = Stack(out, race_dir, processors=args.processors, broadcast=args.broadcast)
    print(f"run folder {out}; starting the processes under test ...", flush=True)
    try:
        stack.start()
        print("started: " + ", ".join(f"{s.name} (pid {s.pid}, {s.ports})"
                                      for s in stack.services), flush=True)
        took = stack.wait_pipeline()
        if took:
            print(f"the processors published their first runner update {took:.1f} s after "
                  "the first fix", flush=True)
        for note in stack.notes:
            print(note, flush=True)
        return measure(args, stack, entrants, interval, start_ms, out, command)
    finally:
        stack.stop()


def measure(args: argparse.Namespace, stack: Stack, entrants: list[tuple[str, str]],
            interval: float, start_ms: int, out: Path, command: str) -> dict[str, Any]:
    """One bounded load of ``entrants`` against the running stack; write its report."""
    import multiprocessing as mp

    devices = fleets.make_devices(entrants, batch_share=args.batch_share, interval_s=interval)
    api, osmand = stack.service("ingest").ports.values()  # type: ignore[union-attr]
    plans = [fleets.FleetPlan(devices=share, race_dir=stack.race_dir,
                              api_url=f"http://127.0.0.1:{api}",
                              osmand_url=f"http://127.0.0.1:{osmand}", key=stack.key,
                              interval_s=interval, duration_s=args.duration, start_ms=start_ms)
             for share in fleets.split(devices, args.fleet_processes)]
    sampler = Sampler()
    for s in stack.services:
        sampler.watch(s.name, s.pid, "under test")
    ctx = mp.get_context("spawn")
    probe_q = ctx.Queue()
    probe = ctx.Process(target=run_probe, args=(stack.bootstrap, probe_q, args.duration + 8),
                        name="probe", daemon=True)
    probe.start()
    sampler.watch("probe", probe.pid, "load")  # type: ignore[arg-type]
    time.sleep(3)  # the probe's consumer joins at the end of the topics before fixes flow
    procs, fleet_q = fleets.start_fleet(plans)
    for i, p in enumerate(procs):
        sampler.watch(f"fleet-{i}", p.pid, "load")
    sampler.start()
    fleet_rows: list[dict[str, Any]] = []
    probe_rows: list[dict[str, Any]] = []
    notes: list[str] = list(stack.notes)
    swarm_result: dict[str, Any] = {}
    swarm = _start_swarm(args, stack, probe_rows, notes, swarm_result)
    known = {s.pid for s in stack.services} | {p.pid for p in procs} | {probe.pid}
    # a reader thread per queue: a slow or stuck message never stalls progress, the
    # profile or the end of the run
    stop_reading = threading.Event()
    readers = [_reader(fleet_q, fleet_rows, stop_reading),
               _reader(probe_q, probe_rows, stop_reading)]
    prof: dict[str, Any] = {}
    profiler: threading.Thread | None = None
    began = time.time()
    next_line = began + args.progress_s
    while time.time() < began + args.duration + 10:
        if time.time() >= next_line:
            next_line += args.progress_s
            _progress(time.time() - began, fleet_rows, probe_rows, sampler)
        if swarm is not None and time.time() < began + 30:  # its workers start early
            _watch_new_children(sampler, known)  # type: ignore[arg-type]
        dead = stack.check_alive()
        if dead:
            notes.append("died during the run: " + ", ".join(dead))
            print(notes[-1], flush=True)
            break
        if (profiler is None and args.profile_s > 0
                and time.time() >= began + max(0.0, args.duration - args.profile_s - 2)):
            profiler = _start_profile(stack, sampler, probe_rows, out, args.profile_s, prof)
        if (all(not p.is_alive() for p in procs) and not probe.is_alive()
                and (swarm is None or not swarm.is_alive())):
            break
        time.sleep(0.5)
    for p in [*procs, probe]:
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()
    time.sleep(1.0)  # the readers take the last seconds the processes sent
    stop_reading.set()
    for r in readers:
        r.join(timeout=2)
    if swarm is not None:
        swarm.join(timeout=40)
    if profiler is not None:
        profiler.join(timeout=args.profile_s + 60)
    sampler.stop()
    config = {"command": command, "runners": len(entrants), "interval": interval,
              "spectators": args.spectators if swarm is not None else 0, "duration": args.duration,
              "batch_share": args.batch_share, "fleet_processes": len(procs),
              "stages": [s.name for s in stack.services], "cpus": os.cpu_count()}
    summary = write_report(out, {"config": config, "fleet": fleet_rows, "probe": probe_rows,
                                 "samples": sampler.samples, "profile": prof or None,
                                 "spectators": swarm_result,
                                 "notes": notes})
    print(f"report: {out / 'report.md'}", flush=True)
    return summary


def _reader(q: Any, rows: list[dict[str, Any]], stop: threading.Event) -> threading.Thread:
    """A thread appending every per-second row that arrives on ``q`` to ``rows``."""

    def work() -> None:
        while not stop.is_set():
            try:
                row = q.get(timeout=0.5)
            except queues.Empty:
                continue
            except (EOFError, OSError):  # every writer is gone
                return
            if "second" in row:
                rows.append(row)

    t = threading.Thread(target=work, name="queue-reader", daemon=True)
    t.start()
    return t


def _progress(elapsed: float, fleet_rows: list[dict[str, Any]],
              probe_rows: list[dict[str, Any]], sampler: Sampler) -> None:
    """One terminal line: the last 5 s of throughput, latency, errors and CPU."""
    recent = [r for r in merge_seconds(fleet_rows)][-5:]
    fixes = sum(r.get("accepted", 0) for r in recent) / max(1, len(recent))
    errors = sum(sum(r.get("errors", {}).values()) for r in recent)
    probe = merge_seconds(probe_rows)[-5:]
    ping = percentiles([v for r in probe for v in r.get("pings_ms", [])])
    upd = percentiles([v for r in probe for v in r.get("updates_ms", [])])
    spec = percentiles([v for r in probe for v in r.get("spectator_ms", [])])
    cpu = " ".join(f"{n}={s['cpu']:.0f}%" for n, s in sorted(sampler.latest().items()))
    print(f"[{elapsed:5.0f} s] {fixes:7.1f} fixes/s, errors {errors} | p99 ms: pings.v1 "
          f"{ping['p99']}, runner-updates {upd['p99']}, spectators {spec['p99']} | CPU {cpu}",
          flush=True)


def _start_swarm(args: argparse.Namespace, stack: Stack, rows: list[dict[str, Any]],
                 notes: list[str], result: dict[str, Any]) -> threading.Thread | None:
    """Start the spectator swarm in a thread when it can run; otherwise say why.

    Each second's end-to-end latencies (fix sent -> row seen on a socket) join ``rows``
    as ``spectator_ms``; the swarm's own summary lands in ``result``.
    """
    if args.spectators <= 0:
        return None
    broadcast = stack.service("broadcast")
    try:
        from loadtest.swarm import run_swarm
        from loadtest.swarm_histogram import bucket_value
    except ImportError:
        notes.append("the spectator swarm (loadtest.swarm.run_swarm) is not in this "
                     "version: the spectator side is off")
        print(notes[-1], flush=True)
        return None
    if broadcast is None:
        notes.append(f"{args.spectators} spectators asked, but no broadcaster runs: "
                     "the spectator side is off")
        print(notes[-1], flush=True)
        return None
    processes = 2
    start_wall = time.time() + 1.0 + 0.3 * processes  # as run_swarm sets its start

    def on_second(stats: Any) -> None:
        hist = stats.tally.e2e
        values = [round(bucket_value(b), 1) for b, c in hist.counts.items() for _ in range(c)]
        rows.append({"second": int(start_wall) + stats.second, "spectator_ms": values})
        result["open"] = stats.tally.open

    def work() -> None:
        try:
            res = run_swarm(f"ws://127.0.0.1:{broadcast.ports['ws']}/",
                            f"standings:{stack.race_dir.name}", clients=args.spectators,
                            processes=processes, duration_s=args.duration,
                            parse_every=max(100, args.spectators // 10),
                            on_second=on_second)
            result.update(res.to_dict(first=min(5, len(res.seconds))))
        except Exception as exc:  # reported, the fleet's figures still stand
            result["error"] = f"{type(exc).__name__}: {exc}"

    t = threading.Thread(target=work, name="swarm", daemon=True)
    t.start()
    return t


def _watch_new_children(sampler: Sampler, known: set[int]) -> None:
    """Sample the swarm's worker processes too, once they exist."""
    import psutil

    for child in psutil.Process().children():
        if child.pid in known:
            continue
        known.add(child.pid)
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "multiprocessing" in cmd and "resource_tracker" not in cmd:
            sampler.watch(f"swarm-{len([k for k in sampler.names() if 'swarm' in k])}",
                          child.pid, "load")


def _start_profile(stack: Stack, sampler: Sampler, probe_rows: list[dict[str, Any]],
                   out: Path, seconds: float, result: dict[str, Any]) -> threading.Thread:
    """Profile the process saturated first so far (or the busiest) in a thread."""
    from loadtest.profile import profile

    verdict = saturated_first(sampler.samples, merge_seconds(probe_rows), os.cpu_count())
    name = verdict["process"]
    service = stack.service(name) if isinstance(name, str) else None
    lagging = isinstance(name, str) and name.startswith("consumer group")
    if lagging:
        service = stack.service("process")  # the processors are the group that lags
    if service is None or service.name == "broker":
        python = [s for s in stack.services if s.name != "broker"]
        service = max(python, key=lambda s: verdict["mean_cpu"].get(s.name, 0.0))

    def work() -> None:
        result.update(profile(service.name, service.pid, out / "profile", seconds))
        if lagging:
            result["message"] = (f"the processors, the consumers of {name}. "
                                 + result.get("message", ""))
        elif name != service.name:
            result["message"] = (f"{name} cannot be profiled with py-spy; profiled the "
                                 "busiest Python process under test instead. "
                                 + result.get("message", ""))

    t = threading.Thread(target=work, name="profile", daemon=True)
    t.start()
    return t
