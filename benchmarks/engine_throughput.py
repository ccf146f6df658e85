"""Throughput of the race engine core, fed one fix at a time as the live system does.

    python benchmarks/engine_throughput.py [--race races/zegama-2026] [--runners 500]
        [--seed 1] [--at-min 120] [--window-min 5] [--decode-fixes 200000]
        [--profile] [--profile-fixes 300000]

Three measurements on one core (the engine is single-threaded), each printed as wall
time (time.perf_counter) and CPU time (time.process_time):

1. on_fix: a whole simulated race (fixes every 10 s, the simulator's defaults) fed to
   ``RaceEngine.on_fix`` in arrival order, matching included; fixes are decoded before
   the clock starts.
2. decode: ``race_engine.fixes.decode_fix`` on device JSON objects, and orjson parsing
   plus ``decode_fix`` on the raw lines, measured apart.
3. live cadence: a field simulated at 1 fix/s per runner; the engine is warmed up with
   the race until ``--at-min`` (one fix in ten), then fed ``--window-min`` minutes at
   the full rate with ``tick()`` every 0.5 s of the arrival clock, as the live
   processors do. Prints on_fix and tick costs apart and the share of one core that a
   live race of this size needs.

``--profile`` adds a cProfile pass (after the timings, so they are not disturbed) over
the first ``--profile-fixes`` fixes of (1) and over a minute of ticks after (3), printing the top
15 functions by tottime. Goal: at least 50,000 fixes/s through on_fix.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson
from provenance import code_version

from race_engine.engine import RaceEngine
from race_engine.fixes import decode_fix, encode_fix
from race_engine.model import Fix, Race
from race_engine.racefolder import load_race
from race_engine.simulate import SimOptions, Simulation, simulate

ROOT = Path(__file__).resolve().parents[1]
GOAL_FIXES_PER_S = 50_000
TICK_MS = 500
WARMUP_EVERY_S = 10
PROFILE_TICKS = 120

Feed = list[tuple[Fix, int]]  # (fix, arrival epoch ms) in arrival order


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--race", default=str(ROOT / "races" / "zegama-2026"), help="race folder")
    p.add_argument("--runners", type=int, default=500, help="simulated runners (500)")
    p.add_argument("--seed", type=int, default=1, help="simulation seed (1)")
    p.add_argument("--at-min", type=float, default=120.0,
                   help="live-cadence window start, minutes after the gun (120)")
    p.add_argument("--window-min", type=float, default=5.0,
                   help="live-cadence window length, minutes (5)")
    p.add_argument("--decode-fixes", type=int, default=200_000,
                   help="fixes to decode in the decode measurement (200000)")
    p.add_argument("--profile", action="store_true", help="add a cProfile pass")
    p.add_argument("--profile-fixes", type=int, default=300_000,
                   help="fixes of the whole-race feed to profile (300000)")
    return p.parse_args(argv)


def feed(sim: Simulation, idx: np.ndarray) -> Feed:
    """The fixes at indices ``idx`` of ``sim`` (already in arrival order) as values."""
    ids = sim.device_ids
    cols = (sim.dev[idx].tolist(), sim.t[idx].tolist(), sim.lat[idx].tolist(),
            sim.lon[idx].tolist(), sim.ele[idx].tolist(), sim.acc[idx].tolist(),
            sim.bat[idx].tolist(), sim.sos[idx].tolist(), sim.arrival[idx].tolist())
    return [(Fix(ids[d], t, la, lo, el, ac, ba, so), a)
            for d, t, la, lo, el, ac, ba, so, a in zip(*cols, strict=True)]


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def rate(n: int, wall: float, cpu: float) -> str:
    return (f"{n} fixes in {wall:.2f} s wall / {cpu:.2f} s CPU: "
            f"{n / wall:,.0f} fixes/s wall, {n / cpu:,.0f} fixes/s CPU, "
            f"{1e6 * wall / n:.1f} us/fix")


def on_fix_whole_race(race: Race, pings: Feed) -> float:
    """Measurement 1; returns fixes per second (wall)."""
    engine = RaceEngine(race)
    on_fix = engine.on_fix
    w0, c0 = clocks()
    for fix, arrival in pings:
        on_fix(None, fix, arrival)
    w1, c1 = clocks()
    print("1. on_fix, whole race at 10 s fixes, arrival order: "
          f"{rate(len(pings), w1 - w0, c1 - c0)}")
    return len(pings) / (w1 - w0)


def decode(pings: Feed, n: int) -> None:
    """Measurement 2: decode_fix alone, and orjson.loads + decode_fix."""
    objs = [encode_fix(f) for f, _ in pings[:n]]
    lines = [orjson.dumps(o) for o in objs]
    w0, c0 = clocks()
    for o in objs:
        decode_fix(o)
    w1, c1 = clocks()
    for line in lines:
        decode_fix(orjson.loads(line))
    w2, c2 = clocks()
    print(f"2. decode_fix on JSON objects: {rate(len(objs), w1 - w0, c1 - c0)}")
    print(f"   orjson.loads + decode_fix on lines: {rate(len(lines), w2 - w1, c2 - c1)}")


def live_feeds(race: Race, args: argparse.Namespace) -> tuple[Feed, Feed]:
    """(warm-up, window) feeds of a field simulated at 1 fix/s per runner."""
    sim = simulate(race, np.random.default_rng(args.seed),
                   SimOptions(runners=args.runners, interval_s=1.0))
    t0 = race.start_ms + round(args.at_min * 60_000)
    t1 = t0 + round(args.window_min * 60_000)
    sec = (sim.t - race.start_ms) // 1000
    warm = np.flatnonzero((sim.arrival < t0) & (sec % WARMUP_EVERY_S == 0))
    window = np.flatnonzero((sim.arrival >= t0) & (sim.arrival < t1))
    return feed(sim, warm), feed(sim, window)


def live_cadence(race: Race, warm: Feed, window: Feed, args: argparse.Namespace) -> None:
    """Measurement 3: the window at 1 fix/s with tick() every 0.5 s of arrival time."""
    engine = RaceEngine(race)
    for fix, arrival in warm:
        engine.on_fix(None, fix, arrival)
    now = next_tick = race.start_ms + round(args.at_min * 60_000)
    fix_s, ticks, tick_cpu = 0.0, [], 0.0
    perf, cpu_now = time.perf_counter, time.process_time
    c0 = cpu_now()
    for fix, arrival in window:
        now = max(now, arrival)
        while next_tick <= now:
            a, b = perf(), cpu_now()
            engine.tick(next_tick)
            ticks.append(perf() - a)
            tick_cpu += cpu_now() - b
            next_tick += TICK_MS
        a = perf()
        engine.on_fix(None, fix, now)
        fix_s += perf() - a
    cpu = cpu_now() - c0
    tick_s = sum(ticks)
    fix_cpu = cpu - tick_cpu
    n, span_s = len(window), args.window_min * 60.0
    tk = np.array(ticks) * 1000.0
    print(f"3. live cadence: {args.runners} runners at 1 fix/s, km spread at "
          f"{args.at_min:g} min, {args.window_min:g} min window "
          f"({len(warm)} warm-up fixes at one in {WARMUP_EVERY_S})")
    print(f"   on_fix: {n} fixes in {fix_s:.2f} s wall / {fix_cpu:.2f} s CPU: "
          f"{n / fix_s:,.0f} fixes/s wall, {n / fix_cpu:,.0f} fixes/s CPU")
    print(f"   tick: {tk.size} ticks in {tick_s:.2f} s wall / {tick_cpu:.2f} s CPU: "
          f"{tk.mean():.2f} ms mean wall, p50 {np.percentile(tk, 50):.2f} ms, max "
          f"{tk.max():.2f} ms ({1e6 * tick_cpu / tk.size / args.runners:.1f} us CPU per runner)")
    print(f"   with ticks: {n / (fix_s + tick_s):,.0f} fixes/s wall, {n / cpu:,.0f} fixes/s CPU;"
          f" ticks are {100 * tick_cpu / cpu:.0f}% of the CPU")
    print(f"   a live race of this size needs {100 * cpu / span_s:.1f}% of one core's CPU "
          f"({span_s / cpu:.0f}x headroom)")


def top(profile: cProfile.Profile, title: str) -> None:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).strip_dirs().sort_stats("tottime").print_stats(15)
    lines = out.getvalue().splitlines()
    start = next((i for i, s in enumerate(lines) if s.lstrip().startswith("ncalls")), 0)
    print(f"\nprofile: {title} (top 15 by tottime)")
    for line in lines[start:start + 16]:
        print("  " + line)


def profile_pass(race: Race, pings: Feed, warm: Feed, window: Feed,
                 args: argparse.Namespace) -> None:
    engine = RaceEngine(race)
    prof = cProfile.Profile()
    prof.enable()
    for fix, arrival in pings[:args.profile_fixes]:
        engine.on_fix(None, fix, arrival)
    prof.disable()
    top(prof, f"on_fix over the first {min(args.profile_fixes, len(pings))} fixes of (1)")
    engine = RaceEngine(race)
    for fix, arrival in warm:
        engine.on_fix(None, fix, arrival)
    for fix, arrival in window:
        engine.on_fix(None, fix, arrival)
    end = max(a for _, a in window) if window else race.start_ms
    prof = cProfile.Profile()
    prof.enable()
    for k in range(PROFILE_TICKS):
        engine.tick(end + k * TICK_MS)
    prof.disable()
    top(prof, f"{PROFILE_TICKS} ticks at the end of the live-cadence window of (3)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        race = load_race(args.race)
        sim = simulate(race, np.random.default_rng(args.seed), SimOptions(runners=args.runners))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"code: {code_version()}")
    print(f"race {race.id}: {args.runners} runners, seed {args.seed}, Python "
          f"{sys.version.split()[0]}, one process")
    pings = feed(sim, np.arange(sim.t.size))
    del sim
    got = on_fix_whole_race(race, pings)
    print(f"   goal >= {GOAL_FIXES_PER_S:,} fixes/s: "
          f"{'REACHED' if got >= GOAL_FIXES_PER_S else 'NOT REACHED'}")
    decode(pings, args.decode_fixes)
    warm, window = live_feeds(race, args)
    live_cadence(race, warm, window, args)
    if args.profile:
        profile_pass(race, pings, warm, window, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
