"""Board consistency over a whole simulated race: are gaps ever negative?

    python benchmarks/board_consistency.py [--race races/zegama-2026] [--runners 500]
        [--seed 1] [--noise 10] [--interval 10] [--loss 0.05] [--stops LO,HI]
        [--off-at-finish] [--detours P] [--every 5] [--json PATH]

Simulates a field (race_engine.simulate, as benchmarks/engine_accuracy.py), feeds every
delivered fix to a RaceEngine in arrival order and builds the board every ``--every``
seconds of the arrival clock (the live processors build one per publish round, at most
every 50 ms; the board depends only on what has arrived, so a coarser cadence samples
the same boards). On each board it checks, for every ranked runner:

* the board's rule (race_engine.board: ranks and gaps at one common race time, each
  runner at its position now): a negative gap to the runner ahead or to the leader, a
  leader whose gap is not 0; and it counts tied and estimated rows;
* the rule the board had before (ranked by furthest checkpoint, then latest progress,
  and each gap taken at the chaser's latest fix, ``board.gap_s``), on the same runners:
  how many gaps to the runner ahead were negative, and how many runners ever had one.

It also times the board's construction (``build_board``) per board, and counts the rows
that changed from one board to the next and those worth sending again
(``board.row_moved``: the processors' standings updates carry only those).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from provenance import code_version

from race_engine.board import build_board, gap_s, point, row_moved
from race_engine.engine import RaceEngine
from race_engine.model import Status
from race_engine.runner import RunnerState
from race_engine.simulate import simulate
from race_engine.simulate_cli import add_field_options, bench_field

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--race", type=Path, default=ROOT / "races" / "zegama-2026")
    p.add_argument("--runners", type=int, default=500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--noise", type=float, default=10.0, help="GPS noise, metres per axis")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between fixes")
    p.add_argument("--loss", type=float, default=0.05, help="fraction of fixes lost")
    add_field_options(p)
    p.add_argument("--every", type=float, default=5.0,
                   help="seconds of the arrival clock between boards checked")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return p.parse_args(argv)


def old_order(runners: dict[str, RunnerState]) -> list[RunnerState]:
    """Ranked runners as the board ranked them before: finishers by finish time, then
    by furthest checkpoint, latest progress and its time."""
    def key(r: RunnerState) -> tuple[int, int, float, float]:
        p = point(r)
        assert p is not None
        if r.status is Status.FINISHED:
            return 0, 0, 0.0, p[0]
        return 1, -r.furthest(), -p[1], p[0]
    ranked = [r for r in runners.values()
              if r.status in (Status.RUNNING, Status.FINISHED) and point(r) is not None]
    return sorted(ranked, key=key)


class Tally:
    def __init__(self) -> None:
        self.boards = 0
        self.rows = 0
        self.negative_ahead = 0
        self.negative_leader = 0
        self.leader_not_zero = 0
        self.tied = 0
        self.estimated = 0
        self.runners_negative: set[str] = set()
        self.old_rows = 0
        self.old_negative_ahead = 0
        self.old_negative_leader = 0
        self.old_runners_negative: set[str] = set()
        self.old_worst_board = 0
        self.build_ms: list[float] = []
        self.sent: dict[str, dict[str, Any]] = {}  # each row as last re-sent (row_moved)
        self.last: dict[str, dict[str, Any]] = {}  # each row on the previous board
        self.resent = 0
        self.changed = 0

    def check(self, engine: RaceEngine, now: int) -> None:
        t0 = time.perf_counter()
        board = build_board(engine.race.id, engine.runners, engine.entrants, engine.curve, now)
        self.build_ms.append((time.perf_counter() - t0) * 1000.0)
        self.boards += 1
        for row in board["runners"]:
            bib = row["bib"]
            if self.boards > 1:
                self.resent += row_moved(row, self.sent.get(bib))
                self.changed += {**row, "last_seen_s": 0} != {**self.last.get(bib, {}),
                                                              "last_seen_s": 0}
            if row_moved(row, self.sent.get(bib)):
                self.sent[bib] = row
            self.last[bib] = row
        rows = [row for row in board["runners"] if row["rank"] is not None]
        if rows and rows[0]["gap_leader_s"] != 0.0:
            self.leader_not_zero += 1
        for row in rows:
            self.rows += 1
            ahead, lead = row["gap_ahead_s"], row["gap_leader_s"]
            if ahead is not None and ahead < 0:
                self.negative_ahead += 1
                self.runners_negative.add(row["bib"])
            if lead is not None and lead < 0:
                self.negative_leader += 1
            self.tied += bool(row["tied"])
            self.estimated += bool(row["estimated"])
        order = old_order(engine.runners)
        on_board = 0
        for i, r in enumerate(order):
            self.old_rows += 1
            g_lead = gap_s(r, order[0]) if i else 0.0
            g_ahead = gap_s(r, order[i - 1]) if i else None
            if g_ahead is not None and g_ahead < 0:
                self.old_negative_ahead += 1
                self.old_runners_negative.add(r.bib)
                on_board += 1
            if g_lead is not None and g_lead < 0:
                self.old_negative_leader += 1
        self.old_worst_board = max(self.old_worst_board, on_board)

    def figures(self) -> dict[str, Any]:
        ms = np.asarray(self.build_ms) if self.build_ms else np.zeros(1)
        return {
            "boards": self.boards, "rows": self.rows,
            "negative_gap_ahead": self.negative_ahead,
            "negative_gap_leader": self.negative_leader,
            "leader_gap_not_zero": self.leader_not_zero,
            "runners_with_a_negative_gap": len(self.runners_negative),
            "tied_rows": self.tied, "estimated_rows": self.estimated,
            "rows_changed_per_board": self.changed / max(self.boards - 1, 1),
            "rows_resent_per_board": self.resent / max(self.boards - 1, 1),
            "old_rule": {
                "rows": self.old_rows, "negative_gap_ahead": self.old_negative_ahead,
                "negative_gap_leader": self.old_negative_leader,
                "runners_with_a_negative_gap": len(self.old_runners_negative),
                "most_on_one_board": self.old_worst_board},
            "build_ms": {"p50": float(np.percentile(ms, 50)),
                         "p99": float(np.percentile(ms, 99)), "max": float(ms.max())},
        }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        race, options = bench_field(args)
        if not args.every > 0:
            raise ValueError(f"--every must be positive seconds, got {args.every:g}")
        sim = simulate(race, np.random.default_rng(args.seed), options)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    version = code_version()
    print(f"code: {version}")
    print(f"race {race.id}: {args.runners} runners, seed {args.seed}, fixes every "
          f"{args.interval:g} s, noise {args.noise:g} m, loss {args.loss:g}; "
          f"{sim.t.size} fixes; a board every {args.every:g} s of the arrival clock")
    engine = RaceEngine(race)
    tally = Tally()
    step = round(args.every * 1000)
    now = race.start_ms
    next_board = race.start_ms + step
    t0 = time.perf_counter()
    for fix, arrival in sim.pings():
        now = max(now, arrival)
        while next_board <= now:
            tally.check(engine, next_board)
            next_board += step
        engine.on_fix(None, fix, now)
    tally.check(engine, now)
    f = tally.figures()
    old = f["old_rule"]
    print(f"checked {f['boards']} boards, {f['rows']} ranked rows in "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"board rule: {f['negative_gap_ahead']} negative gaps to the runner ahead, "
          f"{f['negative_gap_leader']} to the leader, {f['leader_gap_not_zero']} leaders "
          f"with a gap not 0; {f['tied_rows']} tied rows, {f['estimated_rows']} estimated")
    print(f"old rule:   {old['negative_gap_ahead']} negative gaps to the runner ahead "
          f"({old['negative_gap_ahead'] / max(old['rows'], 1):.1%} of rows), "
          f"{old['negative_gap_leader']} to the leader; "
          f"{old['runners_with_a_negative_gap']} of {args.runners} runners had one, at "
          f"most {old['most_on_one_board']} on one board")
    print(f"rows per board: {f['rows_changed_per_board']:.1f} changed, "
          f"{f['rows_resent_per_board']:.1f} worth sending again (row_moved)")
    b = f["build_ms"]
    print(f"build_board: p50 {b['p50']:.1f} ms, p99 {b['p99']:.1f} ms, max {b['max']:.1f} ms")
    ok = f["negative_gap_ahead"] == 0 and f["negative_gap_leader"] == 0 \
        and f["leader_gap_not_zero"] == 0
    print(f"goal, zero negative gaps at every board: {'reached' if ok else 'NOT reached'}")
    if args.json is not None:
        meta = {"code": version, "race": race.id, "runners": args.runners, "seed": args.seed,
                "interval_s": args.interval, "noise_m": args.noise, "loss": args.loss,
                "every_s": args.every}
        args.json.write_text(json.dumps(meta | f, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
