"""Split and gap accuracy of the race engine on a simulated field, against the naive method.

    python benchmarks/engine_accuracy.py [--race races/zegama-2026] [--runners 500]
        [--seed 1] [--noise 10] [--interval 10] [--loss 0.05] [--worst 10]

Simulates a field (race_engine.simulate: GPS noise, lost fixes, coverage holes whose
fixes arrive late), feeds every delivered fix to a RaceEngine in arrival order, as the
live system would, and compares the engine's final checkpoint splits (its board) with
the simulated truth. The same fixes, sorted by event time per runner, go through the
naive method of commercial trackers (benchmarks/naive.py). The start is excluded: the
gun, not the runner's crossing, is the engine's start split.

* Split error: |split - true crossing| over every runner x checkpoint pair that both
  have; pairs only the truth has are "missing" (split by whether the tracker still sent
  fixes after the crossing), pairs only the method has are "extra".
* Gap error: per checkpoint, each runner's gap to the checkpoint's first runner by the
  method minus the same gap in the truth (first runner: the earliest among the pairs
  both have, on each side).

Prints a table, the goal's verdict (engine split p95 <= 2 s, gap p95 <= 3 s, each at
least 3x better than naive), the split error by checkpoint and by cause, and the worst
pairs. Exits 0 whether or not the goal is reached (it is a measurement, not a test).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from naive import naive_splits
from provenance import code_version

from race_engine.engine import RaceEngine
from race_engine.model import Race
from race_engine.racefolder import load_race
from race_engine.replay import final_splits
from race_engine.simulate import SimOptions, Simulation, simulate

ROOT = Path(__file__).resolve().parents[1]
GOAL_SPLIT_P95_S = 2.0
GOAL_GAP_P95_S = 3.0
GOAL_FACTOR = 3.0
# A fix that reached ingest this much after it was taken was stored in a coverage hole.
LATE_MS = 15_000

Pair = tuple[str, str]  # (bib, checkpoint)


@dataclass
class Track:
    """One runner's delivered fixes by event time (epoch ms) and their arrival."""

    t: np.ndarray
    arrival: np.ndarray
    lat: np.ndarray
    lon: np.ndarray


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--race", default=str(ROOT / "races" / "zegama-2026"), help="race folder")
    p.add_argument("--runners", type=int, default=500, help="simulated runners (500)")
    p.add_argument("--seed", type=int, default=1, help="simulation seed (1)")
    p.add_argument("--noise", type=float, default=10.0, help="GPS noise per axis, m (10)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between fixes (10)")
    p.add_argument("--loss", type=float, default=0.05, help="fraction of fixes lost (0.05)")
    p.add_argument("--worst", type=int, default=10, help="worst pairs to list (10)")
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


def engine_splits(race: Race, sim: Simulation) -> tuple[dict[Pair, int], float]:
    """The engine's board splits after every fix, fed in arrival order; and the seconds."""
    engine = RaceEngine(race)
    t0 = time.perf_counter()
    now = race.start_ms
    for fix, arrival in sim.pings():
        now = max(now, arrival)
        engine.on_fix(None, fix, now)
    rows = final_splits(engine.board(now))
    return {(r["bib"], r["checkpoint"]): r["t"] for r in rows}, time.perf_counter() - t0


def naive_all(race: Race, runs: dict[str, Track]) -> tuple[dict[Pair, int], float]:
    """The naive method's splits for every tracked runner; and the seconds it took."""
    cps = [(c.id, c.m) for c in race.checkpoints]
    t0 = time.perf_counter()
    out: dict[Pair, int] = {}
    for bib, tr in runs.items():
        fixes = zip(tr.t.tolist(), tr.lat.tolist(), tr.lon.tolist(), strict=True)
        for cid, t in naive_splits(race.course, cps, fixes, race.start_ms).items():
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


def fmt(v: float) -> str:
    return "-" if v != v else f"{v:.1f}"


def row(name: str, s: tuple[float, float, float, int], bias: float = float("nan"),
        missing: int | str = "", extra: int | str = "") -> str:
    return (f"  {name:<14} {s[3]:>6} {fmt(s[0]):>7} {fmt(s[1]):>7} {fmt(s[2]):>8}"
            f" {fmt(bias):>6} {missing!s:>8} {extra!s:>6}")


def report(race: Race, sim: Simulation, args: argparse.Namespace) -> None:
    truth = {(c.bib, c.checkpoint): c.t for c in sim.crossings
             if c.checkpoint != race.checkpoints[0].id}
    runs = tracks(race, sim)
    eng, eng_s = engine_splits(race, sim)
    nai, nai_s = naive_all(race, runs)
    start_id = race.checkpoints[0].id
    eng = {k: v for k, v in eng.items() if k[1] != start_id}
    nai = {k: v for k, v in nai.items() if k[1] != start_id}
    tracked = {k: v for k, v in truth.items() if k[0] in runs}
    print(f"pairs in the truth: {len(truth)} ({len(truth) - len(tracked)} of runners "
          f"without fixes); engine {eng_s:.1f} s, naive {nai_s:.1f} s")
    hard = {o.bib for o in sim.outcomes if o.incidents or o.status == "dnf"}
    iv = args.interval * 1000.0
    why = {k: cause(runs.get(k[0]), t, iv, k[0] in hard) for k, t in truth.items()}
    results = {}
    print("\nsplit error |split - truth| (s), start excluded; gap error at checkpoints (s)")
    print(f"  {'':<14} {'pairs':>6} {'p50':>7} {'p95':>7} {'max':>8} {'bias':>6}"
          f" {'missing':>8} {'extra':>6}")
    for name, est in (("engine", eng), ("naive", nai)):
        err = split_errors(est, truth)
        miss = [k for k in truth if k not in est]
        gone = sum(why[k] in ("untracked", "no fix after") for k in miss)
        extra = len([k for k in est if k not in truth])
        s, g = pct(abs(v) for v in err.values()), pct(gap_errors(est, truth))
        results[name] = (s, g, err)
        bias = float(np.mean(list(err.values()))) if err else float("nan")
        print(row(f"{name} split", s, bias, f"{len(miss)}({gone})", extra))
        print(row(f"{name} gap", g))
    print("  bias: mean signed split error (+ late); missing(n): n of them after the "
          "tracker's last delivered fix")
    verdict(results)
    by_checkpoint(race, results, truth)
    by_cause(why, results)
    worst(results, why, truth, args.worst)


def verdict(results: dict[str, tuple]) -> None:
    (es, eg, _), (ns, ng, _) = results["engine"], results["naive"]
    checks = [
        (f"engine split p95 {fmt(es[1])} s <= {GOAL_SPLIT_P95_S} s", es[1] <= GOAL_SPLIT_P95_S),
        (f"engine gap p95 {fmt(eg[1])} s <= {GOAL_GAP_P95_S} s", eg[1] <= GOAL_GAP_P95_S),
        (f"split p95 {ns[1] / es[1]:.1f}x better than naive (>= {GOAL_FACTOR:.0f}x)",
         ns[1] >= GOAL_FACTOR * es[1]),
        (f"gap p95 {ng[1] / eg[1]:.1f}x better than naive (>= {GOAL_FACTOR:.0f}x)",
         ng[1] >= GOAL_FACTOR * eg[1]),
    ]
    print("\ngoal:")
    for text, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {text}")
    print(f"verdict: {'REACHED' if all(ok for _, ok in checks) else 'NOT REACHED'}")


def by_checkpoint(race: Race, results: dict[str, tuple], truth: dict[Pair, int]) -> None:
    print("\nsplit error by checkpoint (s): engine p50/p95/max | naive p50/p95/max | signed"
          " error of the true first runner (engine, naive), which shifts every gap there")
    for c in race.checkpoints[1:]:
        parts, lead = [], []
        for name in ("engine", "naive"):
            err = {k: v for k, v in results[name][2].items() if k[1] == c.id}
            s = pct(abs(v) for v in err.values())
            parts.append(f"{fmt(s[0]):>5} {fmt(s[1]):>6} {fmt(s[2]):>7}")
            first = min(err, key=lambda k: truth[k], default=None)
            lead.append("-" if first is None else f"{err[first]:+.1f}")
        n = sum(1 for k in results["engine"][2] if k[1] == c.id)
        print(f"  {c.id:<15} {c.km:>5.1f} km {n:>4}  {parts[0]} | {parts[1]} | "
              f"{lead[0]:>6} {lead[1]:>6}")


def by_cause(why: dict[Pair, str], results: dict[str, tuple]) -> None:
    print("\nsplit error by cause (s): pairs, engine p50/p95/max | naive p50/p95/max")
    for c in ("clean", "lost fix", "late-flushed", "incident runner"):
        parts = []
        for name in ("engine", "naive"):
            s = pct(abs(v) for k, v in results[name][2].items() if why[k] == c)
            parts.append(f"{fmt(s[0]):>5} {fmt(s[1]):>6} {fmt(s[2]):>7}")
        n = sum(1 for k in results["engine"][2] if why[k] == c)
        print(f"  {c:<16} {n:>5}  {parts[0]} | {parts[1]}")
    print(f"  (late-flushed: a fix either side of the crossing arrived > {LATE_MS // 1000} s "
          "late; lost fix: a gap > 1.5 intervals there; incident: stop, off course, SOS, DNF)")


def worst(results: dict[str, tuple], why: dict[Pair, str], truth: dict[Pair, int],
          n: int) -> None:
    err_e, err_n = results["engine"][2], results["naive"][2]
    print(f"\n{n} worst engine pairs: bib checkpoint, engine error s (signed), naive, cause")
    for k in sorted(err_e, key=lambda k: -abs(err_e[k]))[:n]:
        nv = err_n.get(k)
        print(f"  {k[0]:>4} {k[1]:<15} {err_e[k]:>+9.1f} {'-' if nv is None else f'{nv:+.1f}':>9}"
              f"  {why[k]}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        race = load_race(args.race)
        options = SimOptions(runners=args.runners, interval_s=args.interval,
                             noise_m=args.noise, loss=args.loss)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"code: {code_version()}")
    print(f"race {race.id}: {args.runners} runners, seed {args.seed}, fixes every "
          f"{args.interval:g} s, noise {args.noise:g} m, loss {args.loss:g}, holes and incidents")
    t0 = time.perf_counter()
    try:
        sim = simulate(race, np.random.default_rng(args.seed), options)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    late = int(np.count_nonzero(sim.arrival - sim.t > LATE_MS))
    print(f"simulated in {time.perf_counter() - t0:.1f} s: {sim.t.size} fixes delivered "
          f"({late} flushed late), {len(sim.holes)} coverage holes")
    report(race, sim, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
