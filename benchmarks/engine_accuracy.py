"""Split accuracy of the race engine on a simulated field, beside the trackers' methods.

    python benchmarks/engine_accuracy.py [--race races/zegama-2026] [--runners 500]
        [--seed 1] [--noise 10] [--interval 10] [--loss 0.05] [--stops LO,HI]
        [--off-at-finish] [--detours P] [--radius 30] [--worst 10] [--json PATH]

Simulates a field (race_engine.simulate: GPS noise, lost fixes, coverage holes whose
fixes arrive late, aid-station stops; optionally the stops, trackers switched off on the
finish line and detours of docs/simulation.md), feeds every delivered fix to a RaceEngine
in arrival order, as the live system would, and compares the engine's final checkpoint
splits (its board) with the simulated truth. The same fixes, sorted by event time per
runner, go through the two methods trackers use (benchmarks/naive.py): "past", the first
fix whose matched position is past the checkpoint, and "geofence", the first fix whose
raw position is within ``--radius`` metres of the checkpoint. The start is excluded: the
gun, not the runner's crossing, is the engine's start split.

* Split error: split - true crossing (s, + late) over every runner x checkpoint pair
  that both have: p50, p95 and max of its absolute value, its mean (the bias), overall
  and by checkpoint. Pairs only the truth has are "missing" (the finish counted apart,
  and those after the tracker's last delivered fix, which no method can have); pairs
  only the method has are "extra".
* Gap error: per checkpoint, each runner's gap to the checkpoint's first runner by the
  method minus the same gap in the truth (first runner: the earliest among the pairs
  both have, on each side).

Goal ("accuracy v2"): engine split p95 <= 3 s, every checkpoint's engine bias within
+-1 s, missing pairs <= 1% (finish included), and engine p95 at least 3x smaller than
each tracker method's. Exits 0 whether or not it is reached (a measurement, not a test).

The floor, what fix interval and noise allow (printed beside the figures):

* One-fix methods wait for a fix. Noise-free, the first fix after a crossing comes a
  uniform time in [0, G] after it, G the gap between delivered fixes that contains the
  crossing. With fixes every I s and a fraction q lost, a gap is n intervals with
  probability (1-q) q^(n-1), and a crossing falls in a gap in proportion to its length:
  P(n) = n (1-q)^2 q^(n-1). So the wait has mean (I/2)(1+q)/(1-q) and P(wait > w) =
  sum_n P(n) max(0, 1 - w/(n I)); for q = 0: mean I/2, p95 0.95 I, max I. (The +-30%
  jitter of fix times lengthens the average gap a crossing falls in by ~6%: ignored.)
  "past" at a checkpoint where runners stop has exactly this error (its first fix there
  is on the checkpoint). "geofence" fires on entering the circle, R/v before the
  crossing at speed v, so its noise-free error is about wait - R/v.
* An estimator that fits a line to the fixes before the crossing does not wait: its
  error comes from the noise. A runner's progress y = v (t - t_c) + e, e with sigma the
  noise per axis (the along-course component of isotropic noise), observed at k fixes
  spaced I over the W s before the crossing (k = W (1-q) / I). The crossing is the
  line's value at the window's end: extrapolating a least-squares line to the end of its
  own window has variance sigma^2 (1/k + 3/k) = 4 sigma^2 / k, so the crossing time has
  sigma_t = 2 sigma / (v sqrt(k)). (Fixes after the arrival do not help where runners
  stop there: they sit on the checkpoint. A line through fixes on both sides of a runner
  passing at constant speed would do 2x better: sigma / (v sqrt(k)), also the bound
  when the speed is known.) W = 150 s, over which a runner's pace on a mountain course
  stays about constant (the engine's own fit window); v for each pair is the runner's
  true speed along the course over those W s, measured on a noise-free twin of the field
  (same seed and options, noise 0: the same random numbers, so the same runners and fix
  times, with positions on the course).
  The printed floor is the p50 and p95 of |N(0, sigma_t)| over the pairs' v.
  Noise-free, this floor is 0 and the one-fix methods' is the wait: ``--noise 0`` checks
  both.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from naive import GEOFENCE_RADIUS_M, geofence_splits, naive_splits
from provenance import code_version

from race_engine import matching
from race_engine.engine import RaceEngine
from race_engine.model import Race
from race_engine.replay import final_splits
from race_engine.simulate import Simulation, simulate
from race_engine.simulate_cli import add_field_options, bench_field

ROOT = Path(__file__).resolve().parents[1]
GOAL_SPLIT_P95_S = 3.0
GOAL_BIAS_S = 1.0
GOAL_MISSING = 0.01
GOAL_FACTOR = 3.0
# A fix that reached ingest this much after it was taken was stored in a coverage hole.
LATE_MS = 15_000
# The floor's fit window: fixes this long before the crossing.
FLOOR_WINDOW_S = 150.0
METHODS = ("engine", "past", "geofence")
TRACKER_METHODS = ("past", "geofence")

Pair = tuple[str, str]  # (bib, checkpoint)


@dataclass
class Track:
    """One runner's delivered fixes by event time (epoch ms) and their arrival."""

    t: np.ndarray
    arrival: np.ndarray
    lat: np.ndarray
    lon: np.ndarray


@dataclass
class Result:
    """One method's splits against the truth."""

    err: dict[Pair, float]  # signed split error (s) of each pair both have
    missing: list[Pair]
    extra: int
    gap: list[float]

    def split(self) -> tuple[float, float, float, int]:
        return pct(abs(v) for v in self.err.values())

    def bias(self, checkpoint: str | None = None) -> float:
        v = [e for k, e in self.err.items() if checkpoint is None or k[1] == checkpoint]
        return float(np.mean(v)) if v else float("nan")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--race", default=str(ROOT / "races" / "zegama-2026"), help="race folder")
    p.add_argument("--runners", type=int, default=500, help="simulated runners (500)")
    p.add_argument("--seed", type=int, default=1, help="simulation seed (1)")
    p.add_argument("--noise", type=float, default=10.0, help="GPS noise per axis, m (10)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between fixes (10)")
    p.add_argument("--loss", type=float, default=0.05, help="fraction of fixes lost (0.05)")
    add_field_options(p)
    p.add_argument("--radius", type=float, default=GEOFENCE_RADIUS_M,
                   help=f"geofence radius, m ({GEOFENCE_RADIUS_M:g})")
    p.add_argument("--worst", type=int, default=10, help="worst pairs to list (10)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="also write the figures to PATH as JSON")
    return p.parse_args(argv)


def tracks(race: Race, sim: Simulation) -> dict[str, Track]:
    """Each tracked runner's fixes, by bib, sorted by event time."""
    bib_of = {e.device: e.bib for e in race.entrants if e.device}
    order = np.lexsort((sim.t, sim.dev))
    dev = sim.dev[order]
    cuts = np.flatnonzero(np.diff(dev)) + 1
    out = {}
    for idx in np.split(order, cuts):
        if idx.size:
            bib = bib_of[sim.device_ids[int(sim.dev[idx[0]])]]
            out[bib] = Track(sim.t[idx], sim.arrival[idx], sim.lat[idx], sim.lon[idx])
    return out


def engine_splits(race: Race, sim: Simulation
                  ) -> tuple[dict[Pair, int], float, dict[Pair, float]]:
    """The engine's board splits after every fix, fed in arrival order; the seconds; and
    each GPS split's own error estimate (err_s, the half-width of its 95% interval)."""
    engine = RaceEngine(race)
    t0 = time.perf_counter()
    now = race.start_ms
    for fix, arrival in sim.pings():
        now = max(now, arrival)
        engine.on_fix(None, fix, now)
    board = engine.board(now)
    rows = final_splits(board)
    errs = {(s["bib"], cp["id"]): s["err_s"] for cp in board["checkpoints"]
            for s in cp["splits"] if s["err_s"] is not None}
    return ({(r["bib"], r["checkpoint"]): r["t"] for r in rows}, time.perf_counter() - t0,
            errs)


def stated_errors(race: Race, err: dict[Pair, float],
                  stated: dict[Pair, float]) -> dict[str, object]:
    """How often the engine's own 95% interval (err_s) holds the truth: overall, by
    checkpoint and by third of the stated width."""
    both = [(k, abs(err[k]), stated[k]) for k in err if k in stated]
    def share(rows: list[tuple[Pair, float, float]]) -> float:
        return sum(e <= w for _, e, w in rows) / len(rows) if rows else float("nan")
    widths = np.array([w for _, _, w in both]) if both else np.zeros(1)
    print(f"\nthe engine's own error estimate (err_s, a 95% half-width) on {len(both)} GPS "
          f"splits: holds the truth {100 * share(both):.1f}% (goal ~95%); err_s p50 "
          f"{np.percentile(widths, 50):.1f} s, p95 {np.percentile(widths, 95):.1f} s")
    by_cp = {}
    for c in race.checkpoints[1:]:
        rows = [b for b in both if b[0][1] == c.id]
        by_cp[c.id] = {"n": len(rows), "coverage": share(rows),
                       "err_s_p50": float(np.median([w for _, _, w in rows])) if rows else None}
    print("  by checkpoint: " + ", ".join(f"{cid} {100 * v['coverage']:.0f}%"
                                          for cid, v in by_cp.items()))
    cuts = np.percentile(widths, [100 / 3, 200 / 3])
    thirds = {}
    for name, lo, hi in (("narrow", -np.inf, cuts[0]), ("middle", cuts[0], cuts[1]),
                         ("wide", cuts[1], np.inf)):
        rows = [b for b in both if lo < b[2] <= hi]
        thirds[name] = {"n": len(rows), "coverage": share(rows), "err_s_max": float(
            max((w for _, _, w in rows), default=float("nan")))}
    print("  by stated width: " + ", ".join(
        f"{name} (<= {v['err_s_max']:.1f} s) {100 * v['coverage']:.0f}%"
        for name, v in thirds.items()))
    return {"pairs": len(both), "coverage": share(both),
            "err_s_p50": float(np.percentile(widths, 50)),
            "err_s_p95": float(np.percentile(widths, 95)),
            "by_checkpoint": by_cp, "by_width": thirds}


TrackerMethod = Callable[..., dict[str, int]]


def tracker_all(race: Race, runs: dict[str, Track], method: TrackerMethod, first: int = 0,
                **kw: float) -> tuple[dict[Pair, int], float]:
    """A tracker method's splits, at the checkpoints from index ``first`` on, for every
    tracked runner; and the seconds it took."""
    cps = [(c.id, c.m) for c in race.checkpoints[first:]]
    t0 = time.perf_counter()
    out: dict[Pair, int] = {}
    for bib, tr in runs.items():
        fixes = list(zip(tr.t.tolist(), tr.lat.tolist(), tr.lon.tolist(), strict=True))
        for cid, t in method(race.course, cps, fixes, race.start_ms, **kw).items():
            out[(bib, cid)] = t
    return out, time.perf_counter() - t0


def pct(values: Iterable[float]) -> tuple[float, float, float, int]:
    """(p50, p95, max, n) of ``values``; NaN when there are none."""
    a = np.asarray(list(values), dtype=np.float64)
    if not a.size:
        return float("nan"), float("nan"), float("nan"), 0
    return (float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(a.max()),
            int(a.size))


def split_errors(est: dict[Pair, int], truth: dict[Pair, int]) -> dict[Pair, float]:
    """Signed error (s) of each pair both have."""
    return {k: (est[k] - t) / 1000.0 for k, t in truth.items() if k in est}


def gap_errors(est: dict[Pair, int], truth: dict[Pair, int]) -> list[float]:
    """|method gap - true gap| (s) to each checkpoint's first runner, over common pairs."""
    by_cp: dict[str, list[Pair]] = defaultdict(list)
    for k in truth:
        if k in est:
            by_cp[k[1]].append(k)
    out = []
    for keys in by_cp.values():
        e0 = min(est[k] for k in keys)
        t0 = min(truth[k] for k in keys)
        out += [abs((est[k] - e0) - (truth[k] - t0)) / 1000.0 for k in keys]
    return out


def compare(est: dict[Pair, int], truth: dict[Pair, int]) -> Result:
    return Result(split_errors(est, truth), [k for k in truth if k not in est],
                  sum(1 for k in est if k not in truth), gap_errors(est, truth))


def cause(tr: Track | None, t_true: int, interval_ms: float, incident: bool) -> str:
    """Why a pair may be hard: fixes around the crossing flushed late, a lost fix there,
    an incident runner (stop, off course, SOS, dropout), else none."""
    if tr is None:
        return "untracked"
    k = int(np.searchsorted(tr.t, t_true, side="right"))
    around = [j for j in (k - 1, k) if 0 <= j < tr.t.size]
    if k == tr.t.size:
        return "no fix after"
    if any(tr.arrival[j] - tr.t[j] > LATE_MS for j in around):
        return "late-flushed"
    if k > 0 and tr.t[k] - tr.t[k - 1] > 1.5 * interval_ms:
        return "lost fix"
    return "incident runner" if incident else "clean"


def wait_floor(interval_s: float, loss: float) -> tuple[float, float, float]:
    """(mean, p50, p95) s from a crossing to the next delivered fix (see the docstring)."""
    n = np.arange(1, 200, dtype=np.float64)
    weight = n * (1 - loss) ** 2 * loss ** (n - 1)
    weight /= weight.sum()

    def survival(w: float) -> float:
        return float(np.sum(weight * np.clip(1 - w / (n * interval_s), 0.0, None)))

    mean = interval_s / 2 * (1 + loss) / (1 - loss)
    return mean, quantile(survival, 0.5, interval_s * 200), quantile(survival, 0.05,
                                                                     interval_s * 200)


def quantile(survival: Callable[[float], float], tail: float, hi: float) -> float:
    """The x where a non-increasing ``survival(x)`` falls to ``tail`` (bisection)."""
    lo = 0.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if survival(mid) > tail else (lo, mid)
    return hi


def approach_speeds(race: Race, twin: Simulation, truth: dict[Pair, int]) -> list[float]:
    """Each pair's true speed (m/s) along the course over the FLOOR_WINDOW_S before the
    crossing, from the fixes of ``twin``, the same field without noise (on the course)."""
    runs = tracks(race, twin)
    metres = {c.id: min(c.m, race.course.length_m) for c in race.checkpoints}
    out = []
    for (bib, cid), tc in truth.items():
        tr = runs.get(bib)
        if tr is None:
            continue
        lo, hi = (int(i) for i in np.searchsorted(tr.t, [tc - FLOOR_WINDOW_S * 1000, tc]))
        first = on_course(race, tr, range(lo, hi), metres[cid])
        last = on_course(race, tr, range(hi - 1, lo, -1), metres[cid])
        if first and last and last[0] - first[0] >= FLOOR_WINDOW_S * 1000 / 3:
            v = (last[1] - first[1]) / ((last[0] - first[0]) / 1000.0)
            if v > 0.1:
                out.append(v)
    return out


def on_course(race: Race, tr: Track, indices: Iterable[int],
              near_m: float) -> tuple[int, float] | None:
    """(t, progress) of the first of ``indices``' fixes on the course (not multipath)."""
    for j in indices:
        m = matching.match(race.course, float(tr.lat[j]), float(tr.lon[j]), near_m,
                           behind_m=20.0 * FLOOR_WINDOW_S, ahead_m=50.0)
        if m.off_m < 2.0:
            return int(tr.t[j]), m.progress_m
    return None


def floor(v: np.ndarray, args: argparse.Namespace) -> dict[str, float]:
    """The floors the fix interval and noise allow at approach speeds ``v`` (docstring)."""
    mean, p50, p95 = wait_floor(args.interval, args.loss)
    k = max(FLOOR_WINDOW_S * (1 - args.loss) / args.interval, 2.0)
    out = {"wait_mean_s": mean, "wait_p50_s": p50, "wait_p95_s": p95,
           "geofence_bias_s": mean - args.radius * float(np.mean(1 / v)), "fit_k": k,
           "speed_p50_mps": float(np.median(v))}
    # A line fitted to the window (2 sigma ...), and the bound with the speed known.
    for name, factor in (("fit", 2.0), ("known_speed", 1.0)):
        sigma_t = factor * args.noise / (v * math.sqrt(k))

        def survival(x: float, sigma_t: np.ndarray = sigma_t) -> float:
            if args.noise == 0:
                return 0.0
            return float(np.mean([math.erfc(x / (s * math.sqrt(2))) for s in sigma_t]))

        top = float(sigma_t.max()) * 10 if args.noise else 1.0
        out[f"{name}_p50_s"] = quantile(survival, 0.5, top)
        out[f"{name}_p95_s"] = quantile(survival, 0.05, top)
    return out


def fmt(v: float, signed: bool = False) -> str:
    if v != v:
        return "-"
    return f"{v:+.1f}" if signed else f"{v:.1f}"


def report(race: Race, sim: Simulation, twin: Simulation,
           args: argparse.Namespace) -> dict[str, object]:
    start_id, finish_id = race.checkpoints[0].id, race.checkpoints[-1].id
    truth = {(c.bib, c.checkpoint): c.t for c in sim.crossings if c.checkpoint != start_id}
    runs = tracks(race, sim)
    est, seconds = {}, {}
    est["engine"], seconds["engine"], stated = engine_splits(race, sim)
    est["past"], seconds["past"] = tracker_all(race, runs, naive_splits)
    # The gun is the start: a runner already past the start's circle at the first fix
    # would otherwise be "started" on the finish line at the same spot, hours later.
    est["geofence"], seconds["geofence"] = tracker_all(race, runs, geofence_splits, 1,
                                                       radius_m=args.radius)
    results = {m: compare({k: v for k, v in e.items() if k[1] != start_id}, truth)
               for m, e in est.items()}
    tracked = sum(1 for k in truth if k[0] in runs)
    print(f"pairs in the truth: {len(truth)} ({len(truth) - tracked} of runners without "
          "fixes); " + ", ".join(f"{m} {s:.1f} s" for m, s in seconds.items()))
    hard = {o.bib for o in sim.outcomes if o.incidents or o.status == "dnf"}
    why = {k: cause(runs.get(k[0]), t, args.interval * 1000.0, k[0] in hard)
           for k, t in truth.items()}
    methods = overall(results, truth, why, finish_id, args.radius)
    fl = floor(np.array(approach_speeds(race, twin, truth)), args)
    print_floor(fl, args)
    goal = verdict(race, results, len(truth))
    table = by_checkpoint(race, results, truth)
    own = stated_errors(race, results["engine"].err, stated)
    by_cause(why, results)
    worst(results, why, args.worst)
    return {"methods": methods, "floor": fl, "goal": goal, "by_checkpoint": table,
            "stated_error": own,
            "pairs": len(truth), "seconds": seconds}


def overall(results: dict[str, Result], truth: dict[Pair, int], why: dict[Pair, str],
            finish_id: str, radius: float) -> dict[str, dict[str, float]]:
    print("\nsplit error |split - truth| (s), start excluded; bias: mean signed error "
          "(+ late); gap error at checkpoints (s)")
    print(f"  {'method':<16} {'pairs':>6} {'p50':>6} {'p95':>6} {'max':>7} {'bias':>6}"
          f" {'missing':>8} {'%':>5} {'finish':>6} {'after':>6} {'extra':>5}"
          f" {'gap p50':>8} {'gap p95':>8}")
    out = {}
    for name, r in results.items():
        s, g = r.split(), pct(r.gap)
        after = sum(why[k] in ("untracked", "no fix after") for k in r.missing)
        finish = sum(k[1] == finish_id for k in r.missing)
        share = len(r.missing) / len(truth) if truth else float("nan")
        label = f"geofence {radius:g} m" if name == "geofence" else name
        print(f"  {label:<16} {s[3]:>6} {fmt(s[0]):>6} {fmt(s[1]):>6} {fmt(s[2]):>7}"
              f" {fmt(r.bias(), True):>6} {len(r.missing):>8} {100 * share:>5.1f}"
              f" {finish:>6} {after:>6} {r.extra:>5} {fmt(g[0]):>8} {fmt(g[1]):>8}")
        out[name] = {"pairs": s[3], "p50_s": s[0], "p95_s": s[1], "max_s": s[2],
                     "bias_s": r.bias(), "missing": len(r.missing), "missing_share": share,
                     "missing_finish": finish, "missing_after_last_fix": after,
                     "extra": r.extra, "gap_p50_s": g[0], "gap_p95_s": g[1]}
    print("  past: first fix whose matched position is past the checkpoint; geofence: first"
          " fix within the radius of it.\n  missing: pairs the truth has and the method not;"
          " finish: of them at the finish; after: of them with no fix after the true"
          " crossing")
    return out


def print_floor(fl: dict[str, float], args: argparse.Namespace) -> None:
    print(f"\nfloor (benchmark docstring) for fixes every {args.interval:g} s, {args.loss:g}"
          f" lost, noise {args.noise:g} m per axis:")
    print(f"  one-fix methods, wait for the next fix (no noise): mean {fl['wait_mean_s']:.1f}"
          f" / p50 {fl['wait_p50_s']:.1f} / p95 {fl['wait_p95_s']:.1f} s; geofence bias"
          f" ~ wait - R/v = {fl['geofence_bias_s']:+.1f} s")
    print(f"  line fitted to the fixes of the last {FLOOR_WINDOW_S:g} s (k = "
          f"{fl['fit_k']:.1f}), 2 sigma / (v sqrt k): p50 {fl['fit_p50_s']:.1f} / p95 "
          f"{fl['fit_p95_s']:.1f} s; with the speed known, sigma / (v sqrt k): p50 "
          f"{fl['known_speed_p50_s']:.1f} / p95 {fl['known_speed_p95_s']:.1f} s (median "
          f"approach speed {fl['speed_p50_mps']:.2f} m/s)")


def verdict(race: Race, results: dict[str, Result], pairs: int) -> dict[str, object]:
    eng = results["engine"]
    p95 = eng.split()[1]
    biases = {c.id: eng.bias(c.id) for c in race.checkpoints[1:]}
    off = {k: b for k, b in biases.items() if not abs(b) <= GOAL_BIAS_S}
    worst_cp = max(biases, key=lambda k: abs(biases[k]) if biases[k] == biases[k] else 0.0)
    share = len(eng.missing) / pairs if pairs else float("nan")
    ratios = {m: results[m].split()[1] / p95 for m in TRACKER_METHODS}
    checks = [
        (f"engine split p95 {fmt(p95)} s <= {GOAL_SPLIT_P95_S:g} s", p95 <= GOAL_SPLIT_P95_S),
        (f"every checkpoint's engine bias within +-{GOAL_BIAS_S:g} s: {len(off)} of "
         f"{len(biases)} outside (worst {worst_cp} {fmt(biases[worst_cp], True)} s)", not off),
        (f"missing pairs {len(eng.missing)} ({100 * share:.1f}%) <= {100 * GOAL_MISSING:g}%"
         " (finish included)", share <= GOAL_MISSING),
        ("engine p95 " + ", ".join(f"{ratios[m]:.1f}x better than {m}" for m in ratios)
         + f" (>= {GOAL_FACTOR:g}x both)", all(r >= GOAL_FACTOR for r in ratios.values())),
    ]
    reached = all(ok for _, ok in checks)
    print("\ngoal (accuracy v2):")
    for text, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {text}")
    print(f"verdict: {'REACHED' if reached else 'NOT REACHED'}")
    return {"checks": [{"text": t, "ok": ok} for t, ok in checks], "reached": reached,
            "ratio_p95": ratios}


def by_checkpoint(race: Race, results: dict[str, Result],
                  truth: dict[Pair, int]) -> list[dict[str, object]]:
    print("\nsplit error by checkpoint (s): n true pairs; per method the bias (mean signed "
          "error, + late), p95 of |error| and pairs missing")
    print(f"  {'':<26} | " + " | ".join(f"{m:^17}" for m in METHODS))
    print(f"  {'checkpoint':<15} {'km':>5} {'n':>4} | "
          + " | ".join(f"{'bias':>6} {'p95':>5} {'miss':>4}" for _ in METHODS))
    table = []
    for c in race.checkpoints[1:]:
        n = sum(1 for k in truth if k[1] == c.id)
        parts, row = [], {"checkpoint": c.id, "km": c.km, "n": n}
        for m in METHODS:
            r = results[m]
            p95 = pct(abs(v) for k, v in r.err.items() if k[1] == c.id)[1]
            miss = sum(1 for k in r.missing if k[1] == c.id)
            parts.append(f"{fmt(r.bias(c.id), True):>6} {fmt(p95):>5} {miss:>4}")
            row[m] = {"bias_s": r.bias(c.id), "p95_s": p95, "missing": miss}
        print(f"  {c.id:<15} {c.km:>5.1f} {n:>4} | {' | '.join(parts)}")
        table.append(row)
    return table


def by_cause(why: dict[Pair, str], results: dict[str, Result]) -> None:
    print("\nsplit error by cause (s): pairs, p50/p95/max of " + " | ".join(METHODS))
    for c in ("clean", "lost fix", "late-flushed", "incident runner"):
        parts = []
        for name in METHODS:
            s = pct(abs(v) for k, v in results[name].err.items() if why[k] == c)
            parts.append(f"{fmt(s[0]):>5} {fmt(s[1]):>6} {fmt(s[2]):>7}")
        n = sum(1 for k in results["engine"].err if why[k] == c)
        print(f"  {c:<16} {n:>5}  {' | '.join(parts)}")
    print(f"  (late-flushed: a fix either side of the crossing arrived > {LATE_MS // 1000} s "
          "late; lost fix: a gap > 1.5 intervals there; incident: stop, off course, SOS, DNF)")


def worst(results: dict[str, Result], why: dict[Pair, str], n: int) -> None:
    err = {m: results[m].err for m in METHODS}
    print(f"\n{n} worst engine pairs: bib checkpoint, signed error s of "
          f"{', '.join(METHODS)}; cause")
    for k in sorted(err["engine"], key=lambda k: -abs(err["engine"][k]))[:n]:
        cols = " ".join(f"{fmt(err[m].get(k, float('nan')), True):>9}" for m in METHODS)
        print(f"  {k[0]:>4} {k[1]:<15} {cols}  {why[k]}")


def finite(value: object) -> object:
    """``value`` with NaN and infinities as None, for strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        race, options = bench_field(args)
        if not args.radius > 0:
            raise ValueError(f"--radius must be positive metres, got {args.radius:g}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    version = code_version()
    field = ", ".join(
        [f"stops {args.stops[0]:g}-{args.stops[1]:g} s" if options.stops_set
         else "aid-station stops"]
        + (["trackers off at the finish"] if args.off_at_finish else [])
        + ([f"detours {args.detours:g}"] if args.detours else []))
    print(f"code: {version}")
    print(f"race {race.id}: {args.runners} runners, seed {args.seed}, fixes every "
          f"{args.interval:g} s, noise {args.noise:g} m, loss {args.loss:g}, holes and "
          f"incidents, {field}")
    t0 = time.perf_counter()
    try:
        sim = simulate(race, np.random.default_rng(args.seed), options)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    late = int(np.count_nonzero(sim.arrival - sim.t > LATE_MS))
    print(f"simulated in {time.perf_counter() - t0:.1f} s: {sim.t.size} fixes delivered "
          f"({late} flushed late), {len(sim.holes)} coverage holes")
    # The same field without GPS noise (the same random numbers are drawn): the true
    # approach speeds, for the floor.
    twin = simulate(race, np.random.default_rng(args.seed), replace(options, noise_m=0.0))
    if twin.crossings != sim.crossings:
        print("error: the noise-free twin of the field differs from it", file=sys.stderr)
        return 1
    figures = report(race, sim, twin, args)
    if args.json is not None:
        meta = {"code": version, "race": race.id, "runners": args.runners, "seed": args.seed,
                "interval_s": args.interval, "noise_m": args.noise, "loss": args.loss,
                "stops_s": list(args.stops), "off_at_finish": args.off_at_finish,
                "detours": args.detours, "radius_m": args.radius}
        try:
            args.json.write_text(json.dumps(finite(meta | figures), indent=2) + "\n")
        except OSError as exc:
            print(f"error: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
