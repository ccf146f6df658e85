"""``zegama-live replay RACE_DIR PINGS.jsonl --out DIR``: the engine over a file, offline.

Writes ``DIR/splits.jsonl``, ``DIR/standings.json`` and ``DIR/alerts.jsonl`` and prints
a summary, with the rejected lines counted by reason.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import orjson

from race_engine.racefolder import RaceFolderError, load_race
from race_engine.replay import replay


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("race_dir", type=Path, help="the race folder (course.gpx, race.toml, "
                        "entrants.csv)")
    parser.add_argument("pings", type=Path, help="fixes in the device JSON format, one per line")
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument("--tick", type=float, default=30.0,
                        help="seconds between alert-rule evaluations (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    try:
        race = load_race(args.race_dir)
    except RaceFolderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        lines = args.pings.read_bytes().splitlines()
    except OSError as exc:
        print(f"error: cannot read the fixes file {args.pings}: {exc.strerror}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    result = replay(race, lines, tick_ms=round(args.tick * 1000))
    took = time.perf_counter() - began
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "splits.jsonl").write_bytes(b"".join(orjson.dumps(s) + b"\n"
                                                     for s in result.splits))
    (args.out / "standings.json").write_bytes(orjson.dumps(result.standings,
                                                           option=orjson.OPT_INDENT_2))
    (args.out / "alerts.jsonl").write_bytes(b"".join(orjson.dumps(a) + b"\n"
                                                     for a in result.alerts))
    stats = result.stats
    finishers = len(result.standings["finishers"])
    print(f"replayed {stats.fixes} fixes of {stats.lines} lines in {took:.1f} s "
          f"({stats.fixes / max(took, 1e-9):,.0f} fixes/s): {len(result.splits)} splits, "
          f"{finishers} finishers, {len(result.alerts)} alert changes -> {args.out}")
    if stats.rejected:
        counts = ", ".join(f"{reason} {n}" for reason, n in stats.rejected.most_common())
        print(f"rejected {sum(stats.rejected.values())} lines: {counts}", file=sys.stderr)
        for example in stats.examples:
            print(f"  {example}", file=sys.stderr)
    return 0
