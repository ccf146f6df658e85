"""Error of the finish-time projection made at a checkpoint, on simulated fields.

    python benchmarks/projection_error.py [--race races/zegama-2026] [--runners 500]
        [--seeds 1 2 3] [--checkpoint sancti-spiritu] [--weather good]

For each seed a field is simulated (race_engine.simulate, default options) and its fixes
are fed to a RaceEngine in arrival order, as live. The moment the engine first reports a
finisher's split at the checkpoint, the benchmark asks the engine for that runner's
finish projection (``RaceEngine.etas``: median and p10-p90 band) and compares it with
the runner's true finish. Finishers only: a runner who drops out has no true finish.

Methods compared, each with the information the engine had at that moment:

* engine: the engine's default model (record-ratio);
* engine last-segment: the engine's own baseline model (``last-segment-speed``);
* simple: elapsed time at the checkpoint split + remaining distance / speed over the
  last segment (previous checkpoint's split to this one), from the engine's splits;
* whole-race ratio (a diagnostic for the engine's model): the runner's time so far over
  the record curve's time to the same point, times the curve's remaining time, with
  neither the recent-pace blend nor the fatigue drift.

Prints p50 and p90 of |error|, the bias (mean of projected - true; + means too late),
and the share of true finishes inside the p10-p90 band (80% if the band is calibrated),
overall and by thirds of the field.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from provenance import code_version

from race_engine.engine import RaceEngine
from race_engine.model import Race
from race_engine.projections import LAST_SEGMENT
from race_engine.racefolder import load_race
from race_engine.simulate import WEATHERS, SimOptions, Simulation, simulate

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("engine", "engine last-segment", "simple", "whole-race ratio")
# No finisher's split at the checkpoint is reported later than this after its crossing
# (coverage holes flush within ~30 min): feeding stops there.
REPORT_WITHIN_MS = 3_600_000


@dataclass
class Projection:
    """One runner's projections (epoch ms) at the checkpoint, and the truth."""

    bib: str
    ability: float
    true_finish: int
    delay_s: float  # from the true crossing to the moment the engine reported the split
    median: dict[str, int | None]
    band: dict[str, tuple[int, int] | None]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--race", default=str(ROOT / "races" / "zegama-2026"), help="race folder")
    p.add_argument("--runners", type=int, default=500, help="simulated runners (500)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds (1 2 3)")
    p.add_argument("--checkpoint", default="sancti-spiritu",
                   help="checkpoint the projection is made at (sancti-spiritu)")
    p.add_argument("--weather", default="good", choices=WEATHERS, help="weather (good)")
    return p.parse_args(argv)


def simple(engine: RaceEngine, bib: str, at: str) -> int | None:
    """Elapsed at the split at ``at`` + remaining distance / last segment's speed."""
    r = engine.runner(bib)
    layout = r.layout
    i = layout.index[at]
    splits = {s.checkpoint: s.t_ms for s in r.splits()}
    t1, t0 = splits.get(at), splits.get(layout.ids[i - 1])
    if t1 is None or t0 is None or t1 <= t0:
        return None
    speed = (layout.m[i] - layout.m[i - 1]) / (t1 - t0)  # metres per ms
    return round(t1 + (layout.m[-1] - layout.m[i]) / speed)


def whole_ratio(engine: RaceEngine, bib: str) -> int | None:
    """Time so far / reference time so far, applied to the reference's remaining time."""
    r = engine.runner(bib)
    cur = r.current()
    curve, start = engine.curve, r.layout.start_ms
    if cur is None or curve.t_at(cur[1]) <= 0:
        return None
    t, x = cur
    ratio = (t - start) / 1000.0 / curve.t_at(x)
    return round(t + ratio * (curve.t_at(r.layout.m[-1]) - curve.t_at(x)) * 1000.0)


def project_field(race: Race, sim: Simulation, at: str) -> list[Projection]:
    """Feed the field's fixes in arrival order; project each finisher as it passes ``at``."""
    finish_id = race.checkpoints[-1].id
    crossing = {c.bib: c.t for c in sim.crossings if c.checkpoint == at}
    pending = {o.bib: o for o in sim.outcomes
               if o.status == "finished" and o.finish is not None and o.tracking is not None}
    last = max((crossing[b] for b in pending if b in crossing), default=race.start_ms)
    engine = RaceEngine(race)
    out: list[Projection] = []
    now = race.start_ms
    for fix, arrival in sim.pings():
        now = max(now, arrival)
        for c in engine.on_fix(None, fix, now):
            if c["kind"] != "split" or c["checkpoint"] != at or c["t_ms"] is None:
                continue
            o = pending.pop(c["bib"], None)
            if o is None or o.finish is None:
                continue
            r = engine.runner(o.bib)
            median: dict[str, int | None] = {}
            band: dict[str, tuple[int, int] | None] = {}
            for name, model in (("engine", "record-ratio"), ("engine last-segment", LAST_SEGMENT)):
                eta = next((e for e in engine.etas(r, now, model) if e.target == finish_id), None)
                median[name] = None if eta is None else eta.t_ms
                band[name] = None if eta is None else (eta.p10_ms, eta.p90_ms)
            median["simple"], band["simple"] = simple(engine, o.bib, at), None
            median["whole-race ratio"] = whole_ratio(engine, o.bib)
            band["whole-race ratio"] = None
            out.append(Projection(o.bib, o.ability, o.finish,
                                  (now - crossing[o.bib]) / 1000.0, median, band))
        if not pending or now > last + REPORT_WITHIN_MS:
            break
    return out


def summary(rows: list[Projection], method: str) -> str:
    """p50, p90 of |error| and bias in minutes, band coverage, count."""
    err = np.array([(p.median[method] - p.true_finish) / 60_000.0 for p in rows
                    if p.median[method] is not None])
    if not err.size:
        return f"{'-':>7} {'-':>7} {'-':>7} {'-':>7} {0:>5}"
    bands = [p.band[method] for p in rows if p.band[method] is not None]
    inside = [b[0] <= p.true_finish <= b[1] for p in rows
              for b in [p.band[method]] if b is not None]
    cover = f"{100.0 * sum(inside) / len(bands):.0f}%" if bands else "-"
    return (f"{np.percentile(np.abs(err), 50):>7.1f} {np.percentile(np.abs(err), 90):>7.1f} "
            f"{err.mean():>+7.1f} {cover:>7} {err.size:>5}")


def report(rows: list[Projection], at: str) -> None:
    print(f"\nfinish projection at {at} vs the true finish (minutes): "
          "|error| p50, p90, bias (+ late), share in p10-p90 band, runners")
    print(f"  {'method':<22} {'p50':>7} {'p90':>7} {'bias':>7} {'in band':>7} {'n':>5}")
    for m in METHODS:
        print(f"  {m:<22} {summary(rows, m)}")
    print("\nby thirds of the field (ability percentile)")
    for lo, hi, name in ((0.0, 1 / 3, "front"), (1 / 3, 2 / 3, "middle"), (2 / 3, 1.01, "back")):
        part = [p for p in rows if lo <= p.ability < hi]
        for m in METHODS:
            print(f"  {name:<7} {m:<22} {summary(part, m)}")
    delay = np.array([p.delay_s for p in rows])
    if delay.size:
        print(f"\nprojection made {np.percentile(delay, 50):.0f} s (p50), "
              f"{np.percentile(delay, 90):.0f} s (p90) after the true crossing "
              "(when the engine first reported the split)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        race = load_race(args.race)
        options = SimOptions(runners=args.runners, weather=args.weather)
        if args.checkpoint not in {c.id for c in race.checkpoints[1:-1]}:
            raise ValueError(f"no intermediate checkpoint {args.checkpoint!r}; use one of "
                             + ", ".join(c.id for c in race.checkpoints[1:-1]))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"code: {code_version()}")
    print(f"race {race.id}: {args.runners} runners per field, seeds "
          f"{' '.join(map(str, args.seeds))}, weather {args.weather}, simulator defaults")
    rows: list[Projection] = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        try:
            sim = simulate(race, np.random.default_rng(seed), options)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        got = project_field(race, sim, args.checkpoint)
        finishers = sum(o.status == "finished" for o in sim.outcomes)
        print(f"  seed {seed}: {finishers} finishers, {len(got)} projected at "
              f"{args.checkpoint} ({time.perf_counter() - t0:.1f} s)")
        rows += got
    report(rows, args.checkpoint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
