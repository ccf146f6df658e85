"""The race board: ranks, time gaps, ranked checkpoint splits and finishers.

Computed on demand (per tick, about twice a second), never per fix.

* Rank: finishers by finish time, then runners still out by furthest checkpoint, then
  progress, then the time they reached it; DNF/DSQ/DNS runners follow, unranked.
* Time gap: the difference of the times at which two runners passed the same point of
  the course. For a runner out on the course at progress x reached at time t, the gap to
  the leader is t minus the leader's (interpolated) time at x; it is not a distance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from race_engine.model import Entrant, Status
from race_engine.record import RecordCurve, fmt_delta
from race_engine.runner import Layout, Split


class Racer(Protocol):
    """What the board reads of a runner: a ``RunnerState`` (the whole track) or a
    ``RunnerSummary`` (race_engine.summary) give the same answers."""

    @property
    def bib(self) -> str: ...
    @property
    def layout(self) -> Layout: ...
    @property
    def status(self) -> Status: ...
    @property
    def reason(self) -> str: ...
    @property
    def last_t(self) -> int | None: ...

    def current(self) -> tuple[int, float] | None: ...
    def split(self, checkpoint: str) -> Split | None: ...
    def splits(self) -> list[Split]: ...
    def furthest(self) -> int: ...
    def time_at(self, d: float) -> float | None: ...


R = TypeVar("R", bound=Racer)

_UNRANKED = {Status.DNF: 0, Status.DSQ: 1, Status.DNS: 2}
_INF = float("inf")


def point(r: Racer) -> tuple[float, float] | None:
    """(epoch ms, metres) a runner is compared at: its finish, else its latest progress."""
    if r.status is Status.FINISHED:
        fin = r.split(r.layout.ids[-1])
        if fin is not None:
            return float(fin.t_ms), r.layout.m[-1]
    cur = r.current()
    return None if cur is None else (float(cur[0]), cur[1])


def rank_key(r: Racer) -> tuple[int, int, float, float, str]:
    """Sort key: smaller is better (see the module docstring)."""
    if r.status in _UNRANKED:
        return 2, _UNRANKED[r.status], 0.0, 0.0, r.bib
    p = point(r)
    if r.status is Status.FINISHED and p is not None:
        return 0, 0, 0.0, p[0], r.bib
    if p is None:
        return 1, 1, 0.0, _INF, r.bib
    return 1, -r.furthest(), -p[1], p[0], r.bib


def time_at(r: Racer, d: float) -> float | None:
    """Epoch ms at which runner ``r`` passed ``d`` metres (its finish split at the finish)."""
    if d >= r.layout.m[-1]:
        fin = r.split(r.layout.ids[-1])
        if fin is not None:
            return float(fin.t_ms)
    return r.time_at(d)


def gap_s(chaser: Racer, ahead: Racer) -> float | None:
    """Seconds ``chaser`` is behind ``ahead`` at the chaser's point, or None if ``ahead``
    has not been there (or the chaser has no position)."""
    p = point(chaser)
    if p is None:
        return None
    t = time_at(ahead, p[1])
    return None if t is None else (p[0] - t) / 1000.0


def ranked(runners: Mapping[str, R]) -> list[R]:
    """All runners in board order."""
    return sorted(runners.values(), key=rank_key)


def build_board(race_id: str, runners: Mapping[str, Racer],
                entrants: Mapping[str, Entrant], curve: RecordCurve | None,
                now_ms: int) -> dict[str, Any]:
    """The JSON-able standings of one race at ``now_ms``."""
    order = ranked(runners)
    rows: list[dict[str, Any]] = []
    leader: Racer | None = None
    prev: Racer | None = None
    n_ranked = 0
    for r in order:
        row = _row(r, entrants.get(r.bib), curve, now_ms)
        if r.status in (Status.RUNNING, Status.FINISHED) and point(r) is not None:
            leader = leader or r
            n_ranked += 1
            row["rank"] = n_ranked
            row["gap_leader_s"] = gap_s(r, leader)
            row["gap_ahead_s"] = None if prev is None else gap_s(r, prev)
            prev = r
        rows.append(row)
    start = order[0].layout.start_ms if order else 0
    return {
        "v": 1, "race": race_id, "generated_ms": now_ms,
        "leader": leader.bib if leader else None,
        "runners": rows,
        "checkpoints": checkpoint_splits(runners, entrants),
        "finishers": finishers(runners, entrants, start),
    }


def _row(r: Racer, e: Entrant | None, curve: RecordCurve | None,
         now_ms: int) -> dict[str, Any]:
    p = point(r)
    start = r.layout.start_ms
    furthest = r.furthest()
    delta = None
    if p is not None and curve is not None and p[1] > 0:
        delta = curve.delta_s((p[0] - start) / 1000.0, p[1])
    return {
        "rank": None, "bib": r.bib, "name": e.name if e else r.bib,
        "sex": e.sex if e else "", "category": e.category if e else "",
        "country": e.country if e else "",
        "status": r.status.value, "reason": r.reason,
        "progress_m": None if p is None else round(p[1], 1),
        "checkpoint": r.layout.ids[furthest] if furthest >= 0 else None,
        "t_ms": None if p is None else int(p[0]),
        "elapsed_s": None if p is None else (p[0] - start) / 1000.0,
        "gap_leader_s": None, "gap_ahead_s": None,
        "record_delta_s": None if delta is None else round(delta, 1),
        "record_delta": None if delta is None else fmt_delta(delta),
        "last_fix_ms": r.last_t,
        "last_seen_s": None if r.last_t is None else max(0.0, (now_ms - r.last_t) / 1000.0),
    }


def checkpoint_splits(runners: Mapping[str, Racer],
                      entrants: Mapping[str, Entrant]) -> list[dict[str, Any]]:
    """Per checkpoint, the runners who passed it, ranked by split time, with gaps."""
    any_runner = next(iter(runners.values()), None)
    if any_runner is None:
        return []
    layout = any_runner.layout
    by_cp: dict[str, list[tuple[int, str, str]]] = {cid: [] for cid in layout.ids}
    for r in runners.values():
        for s in r.splits():
            by_cp[s.checkpoint].append((s.t_ms, r.bib, s.source))
    out = []
    for cid, km_m in zip(layout.ids, layout.m, strict=True):
        rows = sorted(by_cp[cid])
        first = rows[0][0] if rows else 0
        out.append({"id": cid, "km": round(km_m / 1000.0, 3), "splits": [
            {"rank": n, "bib": bib, "name": _name(entrants, bib), "t_ms": t,
             "elapsed_s": (t - layout.start_ms) / 1000.0, "gap_s": (t - first) / 1000.0,
             "source": src}
            for n, (t, bib, src) in enumerate(rows, start=1)]})
    return out


def finishers(runners: Mapping[str, Racer], entrants: Mapping[str, Entrant],
              start_ms: int) -> list[dict[str, Any]]:
    """Finished runners by finish time, with the gap to the winner."""
    done = []
    for r in runners.values():
        fin = r.split(r.layout.ids[-1]) if r.status is Status.FINISHED else None
        if fin is not None:
            done.append((fin.t_ms, r.bib))
    done.sort()
    first = done[0][0] if done else 0
    return [{"rank": n, "bib": bib, "name": _name(entrants, bib), "t_ms": t,
             "time_s": (t - start_ms) / 1000.0, "gap_s": (t - first) / 1000.0}
            for n, (t, bib) in enumerate(done, start=1)]


def _name(entrants: Mapping[str, Entrant], bib: str) -> str:
    e = entrants.get(bib)
    return e.name if e else bib
