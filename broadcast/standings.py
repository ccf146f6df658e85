"""The race board rebuilt from ``standings.v1``: snapshots, updates, top-N views.

Rules of docs/streams.md: start from a snapshot, apply each later update in order; an
update whose ``base_seq`` is not the last applied standings ``seq`` means one was
missed, so the board waits for the next snapshot. A record whose ``seq`` is not above
the last applied one is a duplicate and is skipped.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]
UPDATE_KEYS = ("race", "seq", "base_seq", "generated_ms", "leader", "order", "rows",
               "checkpoints", "finishers")


class Board:
    """One race's board and the standings ``seq`` it is at."""

    def __init__(self, race: str) -> None:
        self.race = race
        self.board: Json | None = None
        self.seq = 0  # the last applied standings record
        self.waiting = True  # no snapshot yet, or an update was missed
        self.skipped = 0  # duplicates and updates applied to nothing
        self.last_update: Json | None = None  # the update the last "update" applied

    def apply(self, record: Json) -> str | None:
        """Apply one ``standings.v1`` record; return ``"snapshot"``, ``"update"`` or None.

        None means the record changed nothing (duplicate, or an update while waiting for
        a snapshot). A snapshot of a board already in step is applied as the update from
        the held board to it (``last_update``), so clients get a small diff rather than
        the whole board every few seconds. Raises ValueError naming a field that is
        missing or mistyped.
        """
        seq = _int(record, "seq")
        kind = record.get("type")
        if seq <= self.seq:
            self.skipped += 1
            return None
        if kind == "snapshot":
            board = record.get("board")
            if not isinstance(board, dict) or not isinstance(board.get("runners"), list):
                raise ValueError("standings snapshot lacks 'board' with 'runners'")
            if self.waiting or self.board is None:
                self.board, self.seq, self.waiting = board, seq, False
                return "snapshot"
            self.last_update = diff(self.board, board, self.seq, seq)  # may raise: state kept
            self.board, self.seq = board, seq
            return "update"
        if kind != "update":
            raise ValueError(f"standings record type {kind!r} is not 'snapshot' or 'update'")
        if self.waiting or self.board is None or _int(record, "base_seq") != self.seq:
            self.waiting = True
            self.skipped += 1
            return None
        self.board = apply_update(self.board, record)
        self.seq = seq
        self.last_update = record
        return "update"


def apply_update(board: Json, update: Json) -> Json:
    """A new board: ``update``'s rows, order, checkpoints, finishers, leader applied.

    Raises ValueError when ``order`` or ``rows`` is not a list.
    """
    order, rows = update.get("order"), update.get("rows")
    if not isinstance(order, list) or not isinstance(rows, list):
        raise ValueError("standings update needs 'order' and 'rows' lists")
    by_bib = {row["bib"]: row for row in board["runners"]}
    by_bib.update((row["bib"], row) for row in rows)
    runners = [by_bib[bib] for bib in order if bib in by_bib]
    checkpoints = _replace_by_id(board.get("checkpoints", []), update.get("checkpoints", []))
    out = {**board, "runners": runners, "checkpoints": checkpoints,
           "leader": update.get("leader"), "generated_ms": update.get("generated_ms")}
    if "finishers" in update:
        out["finishers"] = update["finishers"]
    return out


def diff(old: Json, new: Json, base_seq: int, seq: int) -> Json:
    """The standings update that turns board ``old`` into board ``new``."""
    old_rows = {r["bib"]: r for r in old["runners"]}
    old_cps = {c["id"]: c for c in old.get("checkpoints", [])}
    update = {"race": new.get("race"), "seq": seq, "base_seq": base_seq,
              "generated_ms": new.get("generated_ms"), "leader": new.get("leader"),
              "order": [r["bib"] for r in new["runners"]],
              "rows": [r for r in new["runners"] if old_rows.get(r["bib"]) != r],
              "checkpoints": [c for c in new.get("checkpoints", []) if old_cps.get(c["id"]) != c]}
    if new.get("finishers") != old.get("finishers"):
        update["finishers"] = new.get("finishers")
    return update


def merge_updates(first: Json, later: Json) -> Json:
    """One update equal to applying ``first`` then ``later`` (a window's updates as one)."""
    rows = {row["bib"]: row for row in first.get("rows", [])}
    rows.update((row["bib"], row) for row in later.get("rows", []))
    merged = {**first, **{k: later[k] for k in UPDATE_KEYS if k in later and k != "base_seq"}}
    merged["rows"] = list(rows.values())
    merged["checkpoints"] = _replace_by_id(first.get("checkpoints", []),
                                           later.get("checkpoints", []))
    return merged


def update_data(update: Json) -> Json:
    """The websocket update ``data`` of a standings record: the record minus v and type."""
    return {k: update[k] for k in UPDATE_KEYS if k in update}


def top_board(board: Json, n: int) -> Json:
    """The board with only its first ``n`` runner rows."""
    return {**board, "runners": board["runners"][:n]}


def top_update(update: Json, rows: dict[str, Json], n: int, before: set[str]) -> Json:
    """An update cut to the first ``n`` bibs of its order.

    ``rows`` are the board's rows by bib after the update, ``before`` the bibs of the
    previous top ``n``: a bib entering the top gets its row even when its row did not
    change, since a top-``n`` client never held it.
    """
    order = update["order"][:n]
    changed = {r["bib"] for r in update["rows"]}
    return {**update, "order": order,
            "rows": [rows[bib] for bib in order
                     if bib in rows and (bib in changed or bib not in before)]}


def _replace_by_id(old: list[Json], new: list[Json]) -> list[Json]:
    if not new:
        return list(old)
    fresh = {cp["id"]: cp for cp in new}
    out = [fresh.pop(cp["id"], cp) for cp in old]
    return out + list(fresh.values())


def _int(record: Json, name: str) -> int:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"field {name!r} must be an integer, got {value!r}")
    return value
