"""Websocket channels: names, snapshots, per-tick updates and the resume buffer.

A channel turns a ``RaceView`` into frames (docs/websocket.md): ``snapshot_frame()``
the whole state, ``tick(pending, now)`` at most one update frame per tick. Each frame
is encoded once with orjson and the same bytes go to every subscriber. Updates are kept
for ``resume_s`` seconds (at most ``resume_frames``) so a reconnecting client gets what
it missed instead of a snapshot.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson

from broadcast.compact import compact
from broadcast.standings import top_board, top_update, update_data
from broadcast.views import Pending, RaceView

Json = dict[str, Any]
KINDS = ("standings", "runner", "checkpoint", "flow", "control")
MAX_TOP = 500


class ChannelError(ValueError):
    """A channel name or option that cannot be served; ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Kept:
    """One frame in the resume buffer: its seq, the seq before it, when it was sent."""

    seq: int
    base: int
    t: float
    frame: bytes


def parse_name(name: str) -> tuple[str, str, str | None]:
    """``(kind, race, id)`` of a channel name ``KIND:RACE[:ID]``.

    Raises ChannelError(unknown_channel) when the name has no known form.
    """
    parts = name.split(":") if isinstance(name, str) else []
    kind = parts[0] if parts else ""
    with_id = kind in ("runner", "checkpoint")
    if kind not in KINDS or len(parts) != (3 if with_id else 2) or not all(parts):
        raise ChannelError("unknown_channel", f"channel {name!r} is not one of standings:RACE, "
                           "runner:RACE:BIB, checkpoint:RACE:ID, flow:RACE, control:RACE")
    return kind, parts[1], parts[2] if with_id else None


def encode(kind: str, name: str, seq: int, data: Json) -> bytes:
    """One server frame, encoded, its numbers rounded to what a person reads."""
    return orjson.dumps({"type": kind, "channel": name, "seq": seq, "data": compact(data)})


class Channel:
    """One channel of one race (one ``top`` value for standings)."""

    delta = False  # True: an update needs the one before it (a dropped one means a snapshot)

    def __init__(self, name: str, view: RaceView, resume_s: float, resume_frames: int) -> None:
        self.name = name
        self.view = view
        self.resume_s = resume_s
        self.kept: deque[Kept] = deque(maxlen=resume_frames)
        self.seq = self.current_seq()
        self._snapshot: tuple[int, bytes] | None = None
        self.subscribers: set[Any] = set()

    def current_seq(self) -> int:
        raise NotImplementedError

    def snapshot_data(self) -> Json:
        raise NotImplementedError

    def update(self, pending: Pending) -> tuple[str, Json] | None:
        """``(frame type, data)`` of this tick's frame, or None when nothing changed."""
        raise NotImplementedError

    def updates(self, pending: Pending) -> list[tuple[str, Json, int]]:
        """``(frame type, data, seq)`` of each frame of this tick (one, or none)."""
        made = self.update(pending)
        return [] if made is None else [(made[0], made[1], self.current_seq())]

    def snapshot_frame(self) -> bytes:
        """The whole state as a snapshot frame, encoded once per seq."""
        if self._snapshot is None or self._snapshot[0] != self.seq:
            self._snapshot = (self.seq, encode("snapshot", self.name, self.seq,
                                               self.snapshot_data()))
        return self._snapshot[1]

    def tick(self, pending: Pending, now: float) -> list[bytes]:
        """This tick's frames, oldest first (each kept for resume)."""
        self._forget(now)
        out = []
        for kind, data, seq in self.updates(pending):
            base, self.seq = self.seq, max(self.seq, seq)
            frame = encode(kind, self.name, self.seq, data)
            self.kept.append(Kept(self.seq, base, now, frame))
            out.append(frame)
        return out

    def resume(self, since: int) -> list[bytes] | None:
        """The kept frames a client at ``since`` lacks, or None when only a snapshot will do.

        A delta channel resumes only from a frame that starts at ``since``: standings and
        checkpoint frames are made per window of records, the same on every broadcaster
        for the same records, so a client moving to another broadcaster resumes there
        (flow and control frames per tick). A whole-state channel sends its newest frame.
        """
        if since == self.seq and since > 0:
            return []
        frames = [k.frame for k in self.kept]
        for i, kept in enumerate(self.kept):
            if self.delta and kept.base == since:
                return frames[i:]
            if not self.delta and kept.seq > since:
                return frames[-1:]
        return None

    def _forget(self, now: float) -> None:
        while self.kept and now - self.kept[0].t > self.resume_s:
            self.kept.popleft()


class StandingsChannel(Channel):
    """``standings:<race>``, the whole board or its first ``top`` rows.

    One update frame per window of standings records (``RaceView``), made from the
    window's update and what this channel's subscribers hold after the one before it,
    so every broadcaster following the same records makes the same frames whatever its
    ticks (docs/broadcast.md).
    """

    delta = True
    _rows: dict[str, Json]  # the board's rows by bib at this channel's seq
    _splits: dict[str, list[Json]]  # each checkpoint's splits as subscribers hold them
    _top_bibs: set[str]  # the bibs of the first ``top`` rows

    def __init__(self, name: str, view: RaceView, resume_s: float, resume_frames: int,
                 top: int | None = None) -> None:
        self.top = top
        super().__init__(name, view, resume_s, resume_frames)
        self._hold_board()

    def current_seq(self) -> int:
        return self.view.board.seq

    def snapshot_data(self) -> Json:
        board = self.view.board.board
        if board is None:
            return {}
        return board if self.top is None else top_board(board, self.top)

    def updates(self, pending: Pending) -> list[tuple[str, Json, int]]:
        if self.view.board.board is None:
            return []
        if pending.snapshot:  # the board was rebuilt: the updates since are in it
            self._hold_board()
            return [("snapshot", self.snapshot_data(), self.current_seq())]
        return [("update", self._update(u), u["seq"]) for u in pending.updates]

    def _update(self, update: Json) -> Json:
        """The frame data of one standings update; the held state moves past it."""
        before, rows = self._top_bibs, self._rows
        self._rows = {**rows, **{row["bib"]: row for row in update["rows"]}}
        data = update_data(update)
        data["checkpoints"] = checkpoint_tails(data.get("checkpoints", []), self._splits)
        self._splits.update((cp["id"], cp["splits"]) for cp in update.get("checkpoints", []))
        if self.view.ranked_at[0] != update["seq"]:
            self.view.ranked_at = (update["seq"], ranked_prefix(data["order"], self._rows))
        ranked = self.view.ranked_at[1]
        if self.top is not None:
            data = top_update(data, self._rows, self.top, before)
            self._top_bibs = set(data["order"])
            rows = {bib: row for bib, row in rows.items() if bib in before}
        derived = CLOCK_FIELDS if ranked is None else DERIVED_FIELDS
        if ranked is not None:
            data["ranked"] = ranked
        data["rows"] = [change for row in data["rows"]
                        if (change := row_change(row, rows.get(row["bib"]), derived))
                        is not None]
        return data

    def _hold_board(self) -> None:
        """Hold what a subscriber of the view's board holds: rows, splits, top bibs."""
        board = self.view.board.board or {"runners": []}
        self._rows = {row["bib"]: row for row in board["runners"]}
        self._splits = {cp["id"]: cp["splits"] for cp in board.get("checkpoints", [])}
        self._top_bibs = {row["bib"] for row in board["runners"][: self.top]}


class RunnerChannel(Channel):
    """``runner:<race>:<bib>``: the card and track, whole in every frame."""

    def __init__(self, name: str, view: RaceView, resume_s: float, resume_frames: int,
                 bib: str) -> None:
        self.bib = bib
        super().__init__(name, view, resume_s, resume_frames)

    def current_seq(self) -> int:
        held = self.view.runners.get(self.bib)
        return held["seq"] if held else 0

    def snapshot_data(self) -> Json:
        held = self.view.runners.get(self.bib)
        if held is None:
            return {"bib": self.bib, "generated_ms": None, "card": None, "track": []}
        return {"bib": self.bib, "generated_ms": held["generated_ms"],
                "card": self.view.card(self.bib), "track": held["track"]}

    def update(self, pending: Pending) -> tuple[str, Json] | None:
        return ("update", self.snapshot_data()) if self.bib in pending.bibs else None


class CheckpointChannel(Channel):
    """``checkpoint:<race>:<id>``: one checkpoint's ranked splits; an update per window
    of standings records that changes it, carrying the splits its subscribers lack (as
    standings do)."""

    delta = True

    def __init__(self, name: str, view: RaceView, resume_s: float, resume_frames: int,
                 checkpoint: str) -> None:
        self.checkpoint = checkpoint
        super().__init__(name, view, resume_s, resume_frames)
        self._held = self._entry()["splits"]

    def current_seq(self) -> int:
        return self.view.board.seq

    def _entry(self) -> Json:
        board = self.view.board.board or {}
        found = [cp for cp in board.get("checkpoints", []) if cp["id"] == self.checkpoint]
        return found[0] if found else {"id": self.checkpoint, "km": None, "splits": []}

    def snapshot_data(self) -> Json:
        board = self.view.board.board or {}
        return {"generated_ms": board.get("generated_ms"), "checkpoint": self._entry()}

    def updates(self, pending: Pending) -> list[tuple[str, Json, int]]:
        if pending.snapshot:
            self._held = self._entry()["splits"]
            return [("snapshot", self.snapshot_data(), self.current_seq())]
        out = []
        for update in pending.updates:
            for cp in update.get("checkpoints", []):
                if cp["id"] == self.checkpoint:
                    tail = checkpoint_tails([cp], {self.checkpoint: self._held})[0]
                    self._held = cp["splits"]
                    out.append(("update", {"generated_ms": update.get("generated_ms"),
                                           "checkpoint": tail}, update["seq"]))
        return out


class FlowChannel(Channel):
    """``flow:<race>``: every runner's track; updates carry only each track's new tail."""

    delta = True

    def __init__(self, name: str, view: RaceView, resume_s: float, resume_frames: int) -> None:
        super().__init__(name, view, resume_s, resume_frames)
        self._sent = {bib: held["track"] for bib, held in view.runners.items()}

    def current_seq(self) -> int:
        return self.view.runner_seq

    def snapshot_data(self) -> Json:
        return {"runners": {bib: {"name": held["card"].get("name"),
                                  "status": held["card"].get("status"), "track": held["track"]}
                            for bib, held in self.view.runners.items()}}

    def update(self, pending: Pending) -> tuple[str, Json] | None:
        if not pending.bibs:
            return None
        runners = {}
        for bib in sorted(pending.bibs):
            held = self.view.runners[bib]
            new = held["track"]
            start = common_prefix(self._sent.get(bib, []), new)
            self._sent[bib] = new
            runners[bib] = {"name": held["card"].get("name"), "status": held["card"].get("status"),
                            "from": start, "points": new[start:]}
        return "update", {"runners": runners}


CLOCK_FIELDS = frozenset({"last_seen_s"})  # the board time minus last_fix_ms
DERIVED_FIELDS = CLOCK_FIELDS | {"rank"}  # rank: from the update's order and "ranked"


def ranked_prefix(order: list[str], rows: dict[str, Json]) -> int | None:
    """How many bibs lead ``order`` ranked 1, 2, 3... with every later one unranked,
    so that a client can derive each rank from the order; None when the rows' ranks
    do not follow the order that way (then row changes carry ``rank`` themselves)."""
    n = 0
    for bib in order:
        rank = rows[bib].get("rank") if bib in rows else None
        if rank is None:
            break
        if rank != n + 1:
            return None
        n += 1
    if any(rows[bib].get("rank") is not None for bib in order[n:] if bib in rows):
        return None
    return n


def row_change(row: Json, held: Json | None,
               derived: frozenset[str] = CLOCK_FIELDS) -> Json | None:
    """A changed board row as what its subscribers lack: the whole row when they hold
    none for that bib, else its bib and the fields whose value changed (a runner's
    name, category and country never do; progress and gaps at every fix), less the
    ``derived`` ones a client computes itself: ``last_seen_s`` (it changes in every
    row at every board; the board time minus ``last_fix_ms``) and, when the update
    says ``ranked``, ``rank`` (at the start half of a board's rows change rank and
    nothing else). None when nothing else changed."""
    if held is None:
        return row
    changed = {k: v for k, v in row.items() if held.get(k) != v and k not in derived}
    return {"bib": row["bib"], **changed} if changed else None


def checkpoint_tails(changed: list[Json], sent: dict[str, list[Json]]) -> list[Json]:
    """Each changed checkpoint as what its subscribers lack: keep the first ``from``
    splits they hold, append ``splits`` (a new split is usually the last: the list is
    ranked by time, so one runner passing sends one split, not the whole list)."""
    out = []
    for cp in changed:
        held, new = sent.get(cp["id"], []), cp["splits"]
        start = 0  # a refitted split may change one entry anywhere: compare from the top
        while start < min(len(held), len(new)) and held[start] == new[start]:
            start += 1
        out.append({"id": cp["id"], "km": cp["km"], "from": start,
                    "splits": cp["splits"][start:]})
    return out


def common_prefix(old: list[Any], new: list[Any]) -> int:
    """How many leading points ``old`` and ``new`` share (tracks only change at the tail)."""
    i = min(len(old), len(new))
    while i > 0 and old[i - 1] != new[i - 1]:
        i -= 1
    return i


class ControlChannel(Channel):
    """``control:<race>``: open alerts, the control log, the zones' weather alerts and
    every runner's status."""

    delta = True

    def current_seq(self) -> int:
        return self.view.control_seq

    def snapshot_data(self) -> Json:
        view = self.view
        return {"alerts": view.open_alerts(), "log": list(view.log),
                "weather": dict(view.weather),
                "runners": {bib: view.runner_state(bib) for bib in view.runners}}

    def update(self, pending: Pending) -> tuple[str, Json] | None:
        data: Json = {}
        if pending.alerts:
            data["alerts"] = pending.alerts
        if pending.log:
            data["log"] = pending.log
        if pending.weather:
            data["weather"] = pending.weather
        if pending.bibs:
            data["runners"] = {bib: self.view.runner_state(bib) for bib in sorted(pending.bibs)}
        return ("update", data) if data else None


def check_top(kind: str, top: object) -> None:
    """Raise ChannelError(bad_request) unless ``top`` is None or 1..MAX_TOP on standings."""
    if top is not None and (kind != "standings" or isinstance(top, bool)
                            or not isinstance(top, int) or not 1 <= top <= MAX_TOP):
        raise ChannelError("bad_request", f"'top' must be an integer 1..{MAX_TOP} and only on "
                           "a standings channel")


def make_channel(name: str, view: RaceView, top: int | None, resume_s: float,
                 resume_frames: int) -> Channel:
    """The channel called ``name`` (and ``top``) over ``view``.

    Raises ChannelError(bad_request) for an unknown bib or checkpoint or a bad ``top``.
    """
    kind, _race, ident = parse_name(name)
    check_top(kind, top)
    if kind == "standings":
        return StandingsChannel(name, view, resume_s, resume_frames, top)
    if kind == "runner":
        assert ident is not None
        if ident not in view.bibs:
            raise ChannelError("bad_request", f"bib {ident!r} is not an entrant of {view.id}")
        return RunnerChannel(name, view, resume_s, resume_frames, ident)
    if kind == "checkpoint":
        assert ident is not None
        if ident not in view.checkpoint_ids:
            raise ChannelError("bad_request", f"checkpoint {ident!r} is not one of {view.id}: "
                               f"use one of {', '.join(sorted(view.checkpoint_ids))}")
        return CheckpointChannel(name, view, resume_s, resume_frames, ident)
    if kind == "flow":
        return FlowChannel(name, view, resume_s, resume_frames)
    return ControlChannel(name, view, resume_s, resume_frames)
