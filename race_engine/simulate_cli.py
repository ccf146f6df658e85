"""``zegama-live simulate``: write a simulated field's fixes and the truth to a folder.

The adapter around ``race_engine.simulate``: it loads the race folder, seeds the
generator, and writes ``pings.jsonl``, ``truth.jsonl``, ``truth_status.jsonl`` and
``scenario.json`` (docs/simulation.md describes each file).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from race_engine.fixes import encode_fix
from race_engine.model import Race
from race_engine.racefolder import RaceFolderError, load_race
from race_engine.simulate import WEATHERS, SimOptions, Simulation, simulate


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("race_dir", metavar="RACE_DIR", help="the race folder to simulate")
    parser.add_argument("--runners", type=int, default=None,
                        help="simulate the first N entrants (default: all of them)")
    parser.add_argument("--seed", type=int, default=1,
                        help="random seed; the same seed and options give identical files "
                        "(default: 1)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder to write the files into (created if missing)")
    parser.add_argument("--interval", type=float, default=10.0, metavar="S",
                        help="seconds between a tracker's fixes (default: 10)")
    parser.add_argument("--noise", type=float, default=10.0, metavar="M",
                        help="GPS error, standard deviation per axis in metres (default: 10)")
    parser.add_argument("--loss", type=float, default=0.05, metavar="FRACTION",
                        help="fraction of fixes that never arrive (default: 0.05)")
    parser.add_argument("--no-incidents", action="store_true",
                        help="leave out the SOS, the off-course excursion and the 15-min stop")
    parser.add_argument("--weather", choices=WEATHERS, default="good",
                        help="bad weather slows the field, the ridge most, and adds dropouts")
    add_field_options(parser)


def add_field_options(parser: argparse.ArgumentParser) -> None:
    """The options of the field's behaviour at checkpoints (also the benchmarks')."""
    parser.add_argument("--stops", type=stop_range, default=(0.0, 0.0), metavar="LO,HI",
                        help="every runner stands LO-HI seconds (uniform) at each "
                        "intermediate checkpoint, instead of the default aid-station stop")
    parser.add_argument("--off-at-finish", action="store_true",
                        help="trackers send nothing after the runner's finish crossing")
    parser.add_argument("--detours", type=float, default=0.0, metavar="P",
                        help="probability per runner and intermediate checkpoint of a detour "
                        "30-80 m off the course near it, 20-60 s there (default: 0)")


def field_options(args: argparse.Namespace) -> dict[str, Any]:
    """``SimOptions`` keywords of the options ``add_field_options`` added."""
    return {"checkpoint_stop_s": args.stops, "tracker_off_at_finish": args.off_at_finish,
            "checkpoint_detours": args.detours}


def bench_field(args: argparse.Namespace) -> tuple[Race, SimOptions]:
    """The race and field of a benchmark's options (``race``, ``runners``, ``interval``,
    ``noise``, ``loss`` and those of ``add_field_options``).

    Raises:
        ValueError: a bad race folder or option.
    """
    race = load_race(args.race)
    return race, SimOptions(runners=args.runners, interval_s=args.interval,
                            noise_m=args.noise, loss=args.loss, **field_options(args))


def stop_range(text: str) -> tuple[float, float]:
    """``LO,HI`` seconds, e.g. ``0,90``."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LO,HI in seconds such as 0,90, got {text!r}") from None
    return lo, hi


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        race = load_race(args.race_dir)
        n = len(race.entrants) if args.runners is None else args.runners
        options = SimOptions(runners=n, interval_s=args.interval, noise_m=args.noise,
                             loss=args.loss, incidents=not args.no_incidents,
                             weather=args.weather, **field_options(args))
        sim = simulate(race, np.random.default_rng(args.seed), options)
    except (RaceFolderError, ValueError) as e:
        print(f"zegama-live simulate: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = _write(out, sim, race.id, args.seed, options)
    except OSError as e:
        print(f"zegama-live simulate: error: cannot write to {out}: {e.strerror or e}. "
              "Fix: pass an --out folder you can write to", file=sys.stderr)
        return 2
    _summary(sim, paths, time.perf_counter() - started)
    return 0


def _write(out: Path, sim: Simulation, race_id: str, seed: int,
           options: SimOptions) -> list[Path]:
    paths = [out / "pings.jsonl", out / "truth.jsonl", out / "truth_status.jsonl",
             out / "scenario.json"]
    with paths[0].open("wb") as f:
        for fix, arrival in sim.pings():
            line = encode_fix(fix)
            line["arrival"] = arrival
            f.write(orjson.dumps(line) + b"\n")
    with paths[1].open("wb") as f:
        for c in sim.crossings:
            f.write(orjson.dumps({"bib": c.bib, "checkpoint": c.checkpoint, "t": c.t}) + b"\n")
    with paths[2].open("wb") as f:
        for o in sim.outcomes:
            tracking = o.tracking or (None, None)
            f.write(orjson.dumps({
                "bib": o.bib, "device": o.device, "status": o.status, "km": o.km,
                "reason": o.reason, "finish": o.finish, "incidents": list(o.incidents),
                "tracking_from": tracking[0], "tracking_until": tracking[1],
                "ability": round(o.ability, 4),
            }) + b"\n")
    scenario = {
        "race": race_id, "seed": seed, "runners": options.runners,
        "interval_s": options.interval_s, "noise_m": options.noise_m, "loss": options.loss,
        "incidents": options.incidents, "weather": options.weather,
        "checkpoint_stop_s": list(options.checkpoint_stop_s),
        "tracker_off_at_finish": options.tracker_off_at_finish,
        "checkpoint_detours": options.checkpoint_detours,
        "coverage_holes_m": [[round(a, 1), round(b, 1)] for a, b in sim.holes],
        "incident_bibs": sim.incidents, "fixes_generated": sim.generated,
        "fixes_delivered": int(sim.t.size),
    }
    paths[3].write_bytes(orjson.dumps(scenario, option=orjson.OPT_INDENT_2) + b"\n")
    return paths


def _summary(sim: Simulation, paths: list[Path], seconds: float) -> None:
    finishers = sum(o.status == "finished" for o in sim.outcomes)
    dnf = Counter(o.reason.split(",")[0] for o in sim.outcomes if o.status == "dnf")
    late = int(np.count_nonzero(sim.arrival - sim.t > 60_000))
    print(f"runners   {len(sim.outcomes)}: {finishers} finished, {sum(dnf.values())} dnf")
    for reason, count in sorted(dnf.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  dnf     {count:4d}  {reason}")
    print(f"fixes     {sim.t.size} delivered of {sim.generated} generated, "
          f"{late} more than 1 min late")
    holes = ", ".join(f"km {a / 1000:.1f}-{b / 1000:.1f}" for a, b in sim.holes) or "none"
    print(f"holes     {holes}")
    incidents = ", ".join(f"{k} (bib {v})" for k, v in sorted(sim.incidents.items())) or "none"
    print(f"incidents {incidents}")
    for p in paths:
        print(f"wrote     {p}")
    print(f"took      {seconds:.1f} s")
