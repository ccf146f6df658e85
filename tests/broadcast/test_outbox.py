"""A client's outgoing queue: one waiting frame per channel, snapshots for delta channels."""

from __future__ import annotations

from broadcast.outbox import MAX_CHAIN, Outbox


def test_a_newer_card_replaces_the_waiting_one_in_its_place() -> None:
    box = Outbox()
    box.push(None, b"reply", 0.0)
    assert not box.offer("runner", b"card-1", False, lambda: b"snap", 1.0)
    box.push(None, b"pong", 1.5)
    assert box.offer("runner", b"card-2", False, lambda: b"snap", 2.0)
    assert [box.take(), box.take(), box.take(), box.take()] == \
        [(None, b"reply"), ("runner", b"card-2"), (None, b"pong"), None]
    assert box.dropped == 1


def test_delta_updates_wait_in_order_until_a_snapshot_replaces_them_keeping_their_age() -> None:
    box = Outbox()
    box.push(None, b"pong", 0.5)
    for i in range(MAX_CHAIN):
        assert not box.offer("standings", f"u{i}".encode(), True, lambda: b"snap", 1.0 + i)
    assert box.take_all() == [b"pong"] + [f"u{i}".encode() for i in range(MAX_CHAIN)]
    for i in range(MAX_CHAIN + 1):  # one more than a chain: the snapshot stands in
        box.offer("standings", f"v{i}".encode(), True, lambda: b"snap", 10.0 + i)
    assert box.oldest_wait(40.0) == 30.0  # the lag counts from the first waiting frame
    assert box.take() == ("standings", b"snap") and box.take() is None
    assert box.oldest_wait(40.0) == 0.0 and box.dropped == 1


def test_a_waiting_snapshot_is_never_replaced_by_an_update() -> None:
    box = Outbox()
    box.push("runner", b"first-snapshot", 0.0, snapshot=True)
    box.offer("runner", b"card", False, lambda: b"new-snapshot", 1.0)
    assert box.take() == ("runner", b"new-snapshot")


def test_discard_and_overflow() -> None:
    box = Outbox(max_frames=2)
    box.offer("a", b"1", False, lambda: b"s", 0.0)
    box.push(None, b"x", 0.0)
    box.push(None, b"y", 0.0)
    assert box.overflowed and len(box) == 2
    box.discard("a")
    assert box.take() == (None, b"x") and box.take() is None
