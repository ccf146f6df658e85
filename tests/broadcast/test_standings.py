"""The board rebuilt from standings.v1 records equals the engine's board."""

from __future__ import annotations

import copy

from broadcast_records import MINI, RaceRecords

from broadcast.standings import Board, apply_update, merge_updates, top_board, top_update
from zegama_live.topics import STANDINGS


def standings_ticks() -> tuple[RaceRecords, list[tuple[dict, dict]]]:  # type: ignore[type-arg]
    rr = RaceRecords(MINI, snapshot_every=7)
    out = []
    for records in rr.run():
        rec = next(r for t, _, r in records if t == STANDINGS)
        out.append((rec, copy.deepcopy(rr.board)))
    return rr, out


def test_snapshot_then_updates_rebuild_every_board() -> None:
    _, ticks = standings_ticks()
    board = Board("mini")
    for rec, truth in ticks:
        kind = board.apply(rec)
        assert board.board == truth and board.seq == rec["seq"]
        # Only the first snapshot goes out whole; later ones, in step, as the diff.
        assert kind == ("snapshot" if rec is ticks[0][0] else "update")
        if rec["type"] == "snapshot" and kind == "update":
            assert board.last_update is not None
            assert board.last_update["seq"] == rec["seq"]
            assert len(board.last_update["rows"]) <= len(truth["runners"])
    assert sum(r["type"] == "snapshot" for r, _ in ticks) > 10


def test_each_update_applied_gives_that_tick_s_board() -> None:
    _, ticks = standings_ticks()
    state = ticks[0][1]
    for rec, truth in ticks[1:]:
        state = truth if rec["type"] == "snapshot" else apply_update(state, rec)
        assert state == truth


def test_a_duplicate_is_skipped_and_a_gap_waits_for_the_next_snapshot() -> None:
    _, ticks = standings_ticks()
    board = Board("mini")
    board.apply(ticks[0][0])
    assert board.apply(ticks[1][0]) == "update"
    assert board.apply(ticks[1][0]) is None  # at-least-once delivery repeated it
    assert board.apply(ticks[3][0]) is None  # ticks[2] was missed: base_seq does not match
    assert board.waiting
    next_snapshot = next(i for i, (r, _) in enumerate(ticks) if i > 3 and r["type"] == "snapshot")
    for rec, _ in ticks[4:next_snapshot]:
        assert board.apply(rec) is None
    assert board.apply(ticks[next_snapshot][0]) == "snapshot"
    assert board.board == ticks[next_snapshot][1]


def test_merged_updates_equal_the_updates_applied_one_by_one() -> None:
    _, ticks = standings_ticks()
    start = ticks[0][1]
    updates = [rec for rec, _ in ticks[1:6]]
    assert all(u["type"] == "update" for u in updates)
    merged = updates[0]
    for u in updates[1:]:
        merged = merge_updates(merged, u)
    assert merged["base_seq"] == updates[0]["base_seq"] and merged["seq"] == updates[-1]["seq"]
    assert apply_update(start, merged) == ticks[5][1]


def test_a_top_n_client_follows_the_first_n_rows() -> None:
    _, ticks = standings_ticks()
    n = 2
    held = top_board(ticks[0][1], n)
    before = {r["bib"] for r in held["runners"]}
    for rec, truth in ticks[1:]:
        if rec["type"] == "snapshot":
            held = top_board(truth, n)
        else:
            rows = {r["bib"]: r for r in truth["runners"]}
            held = apply_update(held, top_update(rec, rows, n, before))
        before = {r["bib"] for r in truth["runners"][:n]}
        assert held == top_board(truth, n)
