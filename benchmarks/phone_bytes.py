"""Websocket bytes per minute to a spectator, by channel, at Zegama size (no sockets).

A simulated race of ``--race`` (every entrant, the race engine, incidents) is turned into
the processors' records tick by tick, as the broadcaster's tests do
(``tests/broadcast/broadcast_records.py``), and applied to the broadcaster's views and
hub, which tick once per record tick. Subscribers hold one channel each (and one
"phone": standings top 20 and three runners); the websocket message written to each
after every tick (its frames, a batch when several) is counted between race minutes
``--from-min`` and ``--to-min``. Prints bytes per minute of race time per channel and
for the phone; ``--out`` also writes them as JSON.

The record tick is ``--tick-s`` (the processors publish every 50 ms, so the real
message count is higher and each message smaller: a row changes once per fix, whatever
the tick).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "broadcast")]

from broadcast_records import RaceRecords  # noqa: E402

from benchmarks.provenance import code_version  # noqa: E402
from broadcast.hub import Hub, Subscriber  # noqa: E402
from broadcast.views import RaceView  # noqa: E402
from broadcast.wire import message  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--race", type=Path, default=REPO / "races" / "zegama-2026")
    parser.add_argument("--tick-s", type=float, default=5.0)
    parser.add_argument("--from-min", type=float, default=60.0)
    parser.add_argument("--to-min", type=float, default=120.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rr = RaceRecords(args.race, tick_ms=round(args.tick_s * 1000), snapshot_every=2)
    rid = rr.race.id
    view = RaceView(rr.race)
    hub = Hub({rid: view}, resume_s=60, resume_frames=256)
    bibs = [e.bib for e in rr.race.entrants]
    cp = rr.race.checkpoints[1].id  # one the field passes in the window
    channels = {"standings (whole board)": [("standings:" + rid, None)],
                "standings top 20": [("standings:" + rid, 20)],
                "runner (one)": [(f"runner:{rid}:{bibs[len(bibs) // 2]}", None)],
                f"checkpoint ({cp})": [(f"checkpoint:{rid}:{cp}", None)],
                "flow": [("flow:" + rid, None)],
                "phone: top 20 + 3 runners": [("standings:" + rid, 20)] + [
                    (f"runner:{rid}:{b}", None) for b in (bibs[0], bibs[len(bibs) // 2],
                                                          bibs[-1])]}
    subs = {}
    for label, names in channels.items():
        sub = subs[label] = Subscriber()
        for name, top in names:
            hub.subscribe(sub, name, top=top)
    counted = dict.fromkeys(channels, 0)
    frames = dict.fromkeys(channels, 0)
    start, lo, hi = rr.race.start_ms, args.from_min * 60_000, args.to_min * 60_000
    for i, records in enumerate(rr.run()):
        t = (i + 1) * args.tick_s * 1000
        for topic, _, rec in records:
            view.apply(topic, rec)
        hub.tick(t / 1000)
        for label, sub in subs.items():
            sent = hub.take(sub, t / 1000)  # one websocket message per tick, as written
            if sent and lo <= t < hi:
                counted[label] += len(message(sent))
                frames[label] += 1
        if t >= hi:
            break
    minutes = (hi - lo) / 60_000
    result = {"code": code_version(), "race": rid, "runners": len(bibs),
              "tick_s": args.tick_s, "window_min": [args.from_min, args.to_min],
              "race_start_ms": start,
              "bytes_per_min": {k: round(v / minutes) for k, v in counted.items()},
              "messages_per_min": {k: round(v / minutes, 1) for k, v in frames.items()}}
    print(f"{rid}, {len(bibs)} runners, records every {args.tick_s:g} s, race minutes "
          f"{args.from_min:g}-{args.to_min:g}, code {result['code']}")
    for label in channels:
        print(f"  {label:<28} {result['bytes_per_min'][label] / 1024:9.1f} KiB/min "
              f"({result['messages_per_min'][label]:g} messages/min)")
    if args.out:
        args.out.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
