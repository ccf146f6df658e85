"""Finish projection from Sancti Spiritu on real elite races' published splits.

    python benchmarks/elite_projection.py [--race races/zegama-2026]
        [--splits benchmarks/data/zegama-elite-splits.csv]

Each row of the splits file is a published Sancti Spiritu split and finish time of an
elite runner (sources in the file). A split is all that is known of the runner's race
up to there, so the runner is given the reference curve's track at its pace ratio at
Sancti Spiritu (one fix every 250 m, no noise) and the engine's projection
(``race_engine.projections.project``, the default model) is asked for the finish at
the split. It is compared with the published finish, beside the simple method: elapsed
time + the remaining distance at the speed so far (the speed of the last segment is not
published for these races, except once: Aratz in 2016, shown apart).

The record's own year is the curve (its projection is exact by construction) and is
left out of the median; so is an early edition whose course may have differed.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from statistics import median

from provenance import code_version

from race_engine.projections import RECORD_RATIO, project
from race_engine.racefolder import load_race
from race_engine.record import RecordCurve
from race_engine.runner import Layout, RunnerState

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = "sancti-spiritu"
GOAL = 0.03


def seconds(text: str) -> float:
    h, m, s = (int(v) for v in text.split(":"))
    return 3600.0 * h + 60.0 * m + s


def clock(s: float) -> str:
    s = round(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--race", type=Path, default=ROOT / "races" / "zegama-2026")
    p.add_argument("--splits", type=Path,
                   default=ROOT / "benchmarks" / "data" / "zegama-elite-splits.csv")
    return p.parse_args(argv)


def engine_finish(layout: Layout, curve: RecordCurve, length: float, at_m: float,
                  split_s: float) -> float:
    """The engine's finish projection (s from the start) for a runner at ``at_m`` at
    ``split_s``, having run the reference's track at its pace ratio there."""
    ratio = split_s / curve.t_at(at_m)
    r = RunnerState("elite", layout)
    start = layout.start_ms
    d = 250.0
    while d < at_m:
        r.add_fix(start + round(ratio * curve.t_at(d) * 1000), d, 0.0, 43.0, -2.3)
        d += 250.0
    now = start + round(split_s * 1000)
    r.add_fix(now, at_m, 0.0, 43.0, -2.3)
    (eta,) = project(r, curve, [(layout.ids[-1], length)], now, length, RECORD_RATIO)
    return (eta.t_ms - start) / 1000.0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        race = load_race(args.race)
        rows = list(csv.DictReader(args.splits.open(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    layout, curve = Layout.from_race(race), RecordCurve.from_race(race)
    length = race.course.length_m
    at_m = layout.m[layout.index[CHECKPOINT]]
    print(f"code: {code_version()}")
    print(f"reference: {curve.name} curve, {clock(curve.t_at(at_m))} at {CHECKPOINT}, "
          f"{clock(curve.t_at(length))} at the finish")
    print(f"  {'year':<5} {'runner':<22} {'split':>8} {'finish':>8} | {'engine':>8} "
          f"{'error':>6} | {'so far':>8} {'error':>6}")
    eng, simple, early = [], [], []
    for row in rows:
        split_s, finish_s = seconds(row["sancti_spiritu"]), seconds(row["finish"])
        e = engine_finish(layout, curve, length, at_m, split_s)
        s = split_s * length / at_m
        err_e, err_s = (e - finish_s) / finish_s, (s - finish_s) / finish_s
        counted = row["year"] not in ("2007", "2022")
        if counted:
            eng.append(abs(err_e))
            simple.append(abs(err_s))
        elif row["year"] != "2022":
            early.append((abs(err_e), abs(err_s)))
        print(f"  {row['year']:<5} {row['runner']:<22} {row['sancti_spiritu']:>8} "
              f"{row['finish']:>8} | {clock(e):>8} {100 * err_e:>+5.1f}% | {clock(s):>8} "
              f"{100 * err_s:>+5.1f}%{'' if counted else '  (not counted: ' + row['note'] + ')'}")
    me, ms = median(eng), median(simple)
    print(f"median |error| over {len(eng)} races: engine {100 * me:.1f}%, elapsed + remaining "
          f"at the speed so far {100 * ms:.1f}%")
    if early:
        print(f"  with the early edition(s) too: engine "
              f"{100 * median(eng + [e for e, _ in early]):.1f}%, simple "
              f"{100 * median(simple + [x for _, x in early]):.1f}%")
    print(f"goal, within {100 * GOAL:.0f}% and better than the simple method: "
          f"{'reached' if me <= GOAL and me < ms else 'NOT reached'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
