"""The race board: ranks, time gaps, ranked checkpoint splits and finishers.

Computed on demand (per publish round), never per fix. Ranks and gaps are taken at one
common race time, the board's ``at_ms`` (the race's newest fix, in the processors), so
that they never contradict each other:

* Position now: a finisher is at the finish, at its finish time. A runner still out is
  where its latest progress, moved forward at its own pace to ``at_ms``, puts it
  (``race_engine.projections.moved_forward``: at most 30 minutes of silence, never past
  the next checkpoint), and never behind a checkpoint it has a split at; ``estimated``
  after a minute of silence.
* Rank: finishers by finish time, then runners still out by that position (the earlier
  latest fix first at the same point); DNF/DSQ/DNS runners follow, unranked, and so do
  runners with no position yet.
* Time gap: the difference of the times at which two runners passed the same point of
  the course, not a distance. A chaser's point is its position now at ``at_ms`` (its
  finish for a finisher); the runner ahead's time there is read off its track: its
  progress envelope, then the straight line from its latest fix to its own position now
  (to its finish for a finisher), never later than ``at_ms``. The runner ahead is at
  or past the chaser's point, so it passed there no later than the chaser: **a gap is
  never negative**, and the leader's is 0. ``tied`` marks a runner level with the one
  ahead (a gap under half a second, shown as 0).

Gaps are whole seconds (what a board shows); the position now goes out as ``est_m`` to
10 m, so a row does not change at every round while a runner moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from race_engine.model import Entrant, Status
from race_engine.projections import ESTIMATE_AFTER_MS, moved_forward
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


@dataclass(frozen=True, slots=True)
class Place:
    """Where a ranked runner is on the board at its ``at_ms``: ``m`` metres at ``t`` (epoch
    ms; a finisher's finish time, else ``at_ms``), from ``last`` ((epoch ms, metres) of
    its latest progress, the start of the straight part of its track)."""

    m: float
    t: float
    last: tuple[float, float]
    estimated: bool
    furthest: int  # index of the furthest checkpoint with a split (-1: none)


def place(r: Racer, curve: RecordCurve | None, at_ms: float) -> Place | None:
    """Where ``r`` is on the board at ``at_ms`` (see the module docstring); None for a
    runner the board does not rank."""
    if r.status not in (Status.RUNNING, Status.FINISHED):
        return None
    p = point(r)
    if p is None:
        return None
    t_last, x = min(p[0], at_ms), p[1]
    if r.status is Status.FINISHED:
        cur = r.current()
        last = (min(float(cur[0]), t_last), min(cur[1], x)) if cur is not None else (t_last, x)
        return Place(x, t_last, last, False, len(r.layout.m) - 1)
    m = x if curve is None else moved_forward(r, curve, t_last, x, at_ms)
    furthest = r.furthest()
    if furthest >= 0:
        m = max(m, r.layout.m[furthest])
    return Place(m, at_ms, (t_last, x), at_ms - t_last > ESTIMATE_AFTER_MS, furthest)


def rank_key(r: Racer, pl: Place | None = None) -> tuple[int, int, float, float, str]:
    """Sort key: smaller is better (see the module docstring). ``pl``: the runner's place
    on the board (without it, its latest progress)."""
    if r.status in _UNRANKED:
        return 2, _UNRANKED[r.status], 0.0, 0.0, r.bib
    p = point(r)
    if r.status is Status.FINISHED and p is not None:
        return 0, 0, 0.0, p[0], r.bib
    if p is None:
        return 1, 1, 0.0, _INF, r.bib
    m = p[1] if pl is None else pl.m
    return 1, 0, -m, p[0], r.bib


def time_at(r: Racer, d: float) -> float | None:
    """Epoch ms at which runner ``r`` passed ``d`` metres (its finish split at the finish)."""
    if d >= r.layout.m[-1]:
        fin = r.split(r.layout.ids[-1])
        if fin is not None:
            return float(fin.t_ms)
    return r.time_at(d)


def board_time_at(r: Racer, pl: Place, d: float) -> float:
    """Epoch ms at which ``r`` passed ``d`` metres (at most its place's ``m``) on its
    board track: its envelope, then the straight line from its latest progress to its
    place, never later than its place's time (and that time at the place itself: a
    finisher's finish split at the finish)."""
    if d >= pl.m:
        return pl.t
    if d <= pl.last[1]:
        t = r.time_at(d)
        if t is not None:
            return min(t, pl.t)
    t0, m0 = pl.last
    if pl.m <= m0:
        return pl.t
    return min(t0 + (min(d, pl.m) - m0) / (pl.m - m0) * (pl.t - t0), pl.t)


def gap_s(chaser: Racer, ahead: Racer) -> float | None:
    """Seconds ``chaser`` is behind ``ahead`` at the chaser's latest point, or None if
    ``ahead`` has not been there (or the chaser has no position): the rule the board
    had before it ranked at one common time (``build_board``), kept for the benchmark
    that compares the two (benchmarks/board_consistency.py)."""
    p = point(chaser)
    if p is None:
        return None
    t = time_at(ahead, p[1])
    return None if t is None else (p[0] - t) / 1000.0


def ranked(runners: Mapping[str, R]) -> list[R]:
    """All runners by latest progress (``rank_key`` without a place; the board itself
    ranks them at its common time, ``build_board``)."""
    return sorted(runners.values(), key=rank_key)


def _placed(runners: Mapping[str, R], curve: RecordCurve | None,
            at_ms: float) -> list[tuple[Place | None, R]]:
    placed = [(place(r, curve, at_ms), r) for r in runners.values()]
    placed.sort(key=lambda pr: rank_key(pr[1], pr[0]))
    return placed


def build_board(race_id: str, runners: Mapping[str, Racer],
                entrants: Mapping[str, Entrant], curve: RecordCurve | None,
                now_ms: int, at_ms: int | None = None) -> dict[str, Any]:
    """The JSON-able standings of one race at ``now_ms``, ranked at the common race time
    ``at_ms`` (``now_ms`` when not given; see the module docstring)."""
    at = now_ms if at_ms is None else at_ms
    placed = _placed(runners, curve, at)
    rows: list[dict[str, Any]] = []
    leader: tuple[Racer, Place] | None = None
    prev: tuple[Racer, Place] | None = None
    n_ranked = 0
    for pl, r in placed:
        row = _row(r, entrants.get(r.bib), curve, now_ms,
                   r.furthest() if pl is None else pl.furthest)
        if pl is not None:
            leader = leader or (r, pl)
            n_ranked += 1
            row["rank"] = n_ranked
            row["est_m"] = round(pl.m, -1)
            row["estimated"] = pl.estimated
            row["gap_leader_s"] = 0.0 if leader[0] is r else _gap(pl, *leader)
            gap_ahead = None if prev is None else _gap(pl, *prev)
            row["gap_ahead_s"] = gap_ahead
            row["tied"] = gap_ahead == 0
            prev = (r, pl)
        rows.append(row)
    start = placed[0][1].layout.start_ms if placed else 0
    return {
        "v": 1, "race": race_id, "generated_ms": now_ms,
        "leader": leader[0].bib if leader else None,
        "runners": rows,
        "checkpoints": checkpoint_splits(runners, entrants),
        "finishers": finishers(runners, entrants, start),
    }


# Between a runner's fixes its position now and its gaps move a little at every round
# (the board is taken at the race's newest fix): a row is worth sending again when its
# position now moved MOVE_M or a gap MOVE_S, or anything else in it changed.
MOVE_M = 50.0
MOVE_S = 2.0
_DRIFT = {"est_m": MOVE_M, "gap_leader_s": MOVE_S, "gap_ahead_s": MOVE_S}
_AGES = {"last_seen_s"}  # readers derive it from the clock


def row_moved(row: Mapping[str, Any], sent: Mapping[str, Any] | None) -> bool:
    """Whether board row ``row`` differs from the row ``sent`` before it (None: never
    sent) by more than the drift between fixes (see MOVE_M)."""
    if sent is None:
        return True
    for k, v in row.items():
        w = sent.get(k)
        if v == w or k in _AGES:
            continue
        tol = _DRIFT.get(k)
        if tol is None or v is None or w is None or abs(v - w) >= tol:
            return True
    return False


def _gap(pl: Place, ahead: Racer, ahead_pl: Place) -> float:
    """Whole seconds from the runner ahead's time at ``pl`` to ``pl``'s own time (>= 0:
    the runner ahead is at or past ``pl.m`` no later than ``pl.t``)."""
    return float(round((pl.t - board_time_at(ahead, ahead_pl, pl.m)) / 1000.0))


def _row(r: Racer, e: Entrant | None, curve: RecordCurve | None,
         now_ms: int, furthest: int) -> dict[str, Any]:
    p = point(r)
    start = r.layout.start_ms
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
        "est_m": None, "estimated": False,
        "gap_leader_s": None, "gap_ahead_s": None, "tied": False,
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
    by_cp: dict[str, list[tuple[int, str, str, float | None]]] = {cid: [] for cid in layout.ids}
    for r in runners.values():
        for s in r.splits():
            by_cp[s.checkpoint].append((s.t_ms, r.bib, s.source, s.err_s))
    out = []
    for cid, km_m in zip(layout.ids, layout.m, strict=True):
        rows = sorted(by_cp[cid])
        first = rows[0][0] if rows else 0
        out.append({"id": cid, "km": round(km_m / 1000.0, 3), "splits": [
            {"rank": n, "bib": bib, "name": _name(entrants, bib), "t_ms": t,
             "elapsed_s": (t - layout.start_ms) / 1000.0, "gap_s": (t - first) / 1000.0,
             "source": src, "err_s": err}
            for n, (t, bib, src, err) in enumerate(rows, start=1)]})
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
