"""Channels and the fan-out tick, without Kafka or sockets: a client rebuilding each
channel from its frames ends with the server's state; resume replays what was missed."""

from __future__ import annotations

import itertools

import orjson
import pytest
from broadcast_client import ClientChannel, without_clock
from broadcast_records import MINI, RaceRecords

from broadcast.channels import ChannelError
from broadcast.compact import compact
from broadcast.hub import AHEAD_WAIT_S, Hub, Subscriber
from broadcast.outbox import MAX_CHAIN
from broadcast.views import RaceView

FAR = 10**15  # a wall clock long after every record
CHANNELS = ["standings:mini", "runner:mini:1", "checkpoint:mini:top", "flow:mini",
            "control:mini"]


def setup_hub(window_ms: int = 0) -> tuple[RaceRecords, RaceView, Hub]:
    rr = RaceRecords(MINI, snapshot_every=9)  # a standings record every 20 s of race time
    view = RaceView(rr.race, window_ms)
    return rr, view, Hub({"mini": view}, resume_s=3600, resume_frames=10_000)


def drain(hub: Hub, sub: Subscriber, held: dict[str, ClientChannel],  # type: ignore[type-arg]
          now: float = 0.0) -> list[dict]:
    """What the hub gives ``sub`` to write after a tick, decoded and applied to ``held``."""
    frames = [orjson.loads(raw) for raw in hub.take(sub, now)]
    for frame in frames:
        held.setdefault(frame["channel"], ClientChannel(frame["channel"])).apply(frame)
    return frames


@pytest.mark.parametrize("window_ms", [0, 60_000])  # every update, or three as one
def test_every_channel_rebuilt_from_its_frames_equals_a_fresh_snapshot(window_ms: int) -> None:
    rr, view, hub = setup_hub(window_ms)
    sub, held = Subscriber(), {}
    for name in CHANNELS:
        hub.subscribe(sub, name)
    hub.subscribe(sub, "standings:mini", top=2)  # replaces the whole-board subscription
    hub.subscribe(sub, "standings:mini")
    t, seqs = 0.0, {name: [] for name in CHANNELS}
    for records in rr.run():
        for topic, _, rec in records:
            view.apply(topic, rec)
        t += 1
        hub.tick(t)
        for frame in drain(hub, sub, held):
            seqs[frame["channel"]].append(frame["seq"])
    hub.tick(t + 1, now_ms=FAR)  # long after the race: the last window closes
    for frame in drain(hub, sub, held):
        seqs[frame["channel"]].append(frame["seq"])
    for name in CHANNELS:
        fresh = orjson.loads(hub.channel(name).snapshot_frame())
        if name.startswith("checkpoint:"):  # its generated_ms is that of its last change
            assert held[name].state["checkpoint"] == fresh["data"]["checkpoint"]
        else:
            assert without_clock(held[name].state) == without_clock(fresh["data"]) \
                if name.startswith("standings:") else held[name].state == fresh["data"], name
        assert held[name].seq == fresh["seq"]
        assert seqs[name] == sorted(seqs[name]) and len(seqs[name]) > 2, name
    assert without_clock(held["standings:mini"].state) == without_clock(compact(rr.board))
    assert len(held["flow:mini"].state["runners"]) == len(view.runners) >= 2
    assert held["control:mini"].state["alerts"] == compact(view.open_alerts())


def test_one_encoded_frame_goes_to_every_subscriber() -> None:
    rr, view, hub = setup_hub()
    a, b = Subscriber(), Subscriber()
    hub.subscribe(a, "standings:mini")
    hub.subscribe(b, "standings:mini")
    ticks = rr.run()
    for topic, _, rec in next(ticks) + next(ticks):
        view.apply(topic, rec)
    hub.tick(1.0)  # a's and b's snapshots
    assert hub.take(a, 1.0)[0] is hub.take(b, 1.0)[0]
    for topic, _, rec in next(ticks):
        view.apply(topic, rec)
    hub.tick(2.0)
    fa, fb = hub.take(a, 2.0), hub.take(b, 2.0)
    assert fa and fa is fb  # the channel's own list of frames, shared, nothing per client


def test_resume_replays_the_missed_updates_or_sends_a_snapshot() -> None:
    rr, view, hub = setup_hub()
    sub, held = Subscriber(), {}
    hub.subscribe(sub, "standings:mini")
    ticks = rr.run()
    for i in range(4):
        for topic, _, rec in next(ticks):
            view.apply(topic, rec)
        hub.tick(float(i))
        drain(hub, sub, held)
    left_at = held["standings:mini"].seq
    hub.drop(sub)
    for i in range(4, 7):
        for topic, _, rec in next(ticks):
            view.apply(topic, rec)
        hub.tick(float(i))
    back = Subscriber()
    hub.subscribe(back, "standings:mini", since=left_at)
    hub.tick(7.0)
    frames = drain(hub, back, held)
    assert frames and all(f["seq"] > left_at for f in frames)
    assert {f["type"] for f in frames} == {"update"}  # no snapshot needed
    assert without_clock(held["standings:mini"].state) == without_clock(compact(rr.board))
    stranger = Subscriber()
    future = hub.channel("standings:mini").seq + 1000  # a seq this server never had
    hub.subscribe(stranger, "standings:mini", since=future)
    hub.tick(8.0)
    assert drain(hub, stranger, {}) == []  # never a seq below the client's own
    hub.tick(8.0 + AHEAD_WAIT_S)
    (refused,) = [orjson.loads(f) for f in hub.take(stranger, 8.0 + AHEAD_WAIT_S)]
    assert (refused["type"], refused["code"]) == ("error", "ahead")
    assert "without since" in refused["message"] and not stranger.subs
    small = Hub({"mini": view}, resume_s=3600, resume_frames=2)
    small.subscribe(Subscriber(), "standings:mini")
    for i in range(9, 13):
        for topic, _, rec in next(ticks):
            view.apply(topic, rec)
        small.tick(float(i))
    late = Subscriber()
    small.subscribe(late, "standings:mini", since=left_at)  # older than the 2 kept updates
    small.tick(13.0)
    assert [f["type"] for f in drain(small, late, {})] == ["snapshot"]


@pytest.mark.parametrize("every", [3, 40])
def test_a_slow_subscriber_catches_up_with_its_missed_updates_or_one_snapshot(
        every: int) -> None:
    rr, view, hub = setup_hub()
    slow, held = Subscriber(), {}
    hub.subscribe(slow, "standings:mini")
    hub.subscribe(slow, "runner:mini:2")
    dropped, kinds = 0, set()
    for i, records in enumerate(rr.run()):
        for topic, _, rec in records:
            view.apply(topic, rec)
        stats = hub.tick(float(i))
        if i % every != every - 1:
            assert hub.take(slow, float(i), writable=False) == []  # its socket is full
        else:
            frames = drain(hub, slow, held, float(i))
            standings = [f for f in frames if f["channel"] == "standings:mini"]
            assert len(standings) <= MAX_CHAIN and len(frames) - len(standings) <= 1
            if i >= every:  # the first drain holds the subscription's snapshot
                kinds.update(f["type"] for f in standings)
        dropped += stats.dropped
    drain(hub, slow, held)
    assert dropped > 50  # cards superseded by newer cards
    # A little behind: the updates it missed; far behind: one snapshot of its channel.
    assert kinds == ({"update"} if every == 3 else {"snapshot"})
    assert without_clock(held["standings:mini"].state) == without_clock(compact(rr.board))
    assert held["runner:mini:2"].state["card"] == compact(view.runners["2"]["card"])


@pytest.mark.parametrize(("name", "top", "code"), [
    ("standings", None, "unknown_channel"), ("board:mini", None, "unknown_channel"),
    ("standings:nope", None, "unknown_race"), ("runner:mini:999", None, "bad_request"),
    ("checkpoint:mini:summit", None, "bad_request"), ("flow:mini", 5, "bad_request"),
    ("standings:mini", 0, "bad_request"), ("runner:mini", None, "unknown_channel"),
])
def test_bad_channels_are_refused_with_the_protocol_code(name: str, top: int | None,
                                                         code: str) -> None:
    _, _, hub = setup_hub()
    with pytest.raises(ChannelError) as err:
        hub.subscribe(Subscriber(), name, top)
    assert err.value.code == code and str(err.value)


def frames(hub: Hub, sub: Subscriber) -> list[dict]:  # type: ignore[type-arg]
    """What the hub gives ``sub`` to write after a tick, decoded."""
    return [orjson.loads(raw) for raw in hub.take(sub, 0.0)]


def test_the_control_channel_carries_the_weather_state_in_snapshots_and_updates() -> None:
    rr, view, hub = setup_hub()
    for topic, _, rec in next(rr.run()):
        view.apply(topic, rec)
    watcher = Subscriber()
    hub.subscribe(watcher, "control:mini")
    hub.tick(1.0)
    seen = frames(hub, watcher)
    assert [f["data"]["weather"] for f in seen] == [{}]
    command = {"id": "c-w1", "op": "weather", "zone": "top-ridge", "on": True,
               "by": "control:maite", "at_ms": 5000}
    topic, _, entry = rr.control_log(command)
    view.apply(topic, entry)
    hub.tick(2.0)
    (update,) = frames(hub, watcher)
    seen.append(update)
    on = {"on": True, "by": "control:maite", "t_ms": 5050}
    assert update["type"] == "update" and update["data"]["weather"] == {"top-ridge": on}
    assert update["seq"] == entry["seq"]
    # A repeat is logged but the weather state did not change: no weather key.
    topic, _, again = rr.control_log({**command, "id": "c-w2"}, "unchanged")
    view.apply(topic, again)
    hub.tick(3.0)
    (update,) = frames(hub, watcher)
    seen.append(update)
    assert "weather" not in update["data"] and update["data"]["log"][0]["id"] == "c-w2"
    # A page that connects now gets the state in its snapshot.
    late = Subscriber()
    hub.subscribe(late, "control:mini")
    hub.tick(4.0)
    (snapshot,) = frames(hub, late)
    assert snapshot["type"] == "snapshot" and snapshot["data"]["weather"] == {"top-ridge": on}
    # The watcher's snapshot and updates, applied in order, give the same state.
    client = ClientChannel("control:mini")
    for frame in seen:
        client.apply(frame)
    assert client.state == snapshot["data"]


def test_a_channel_nobody_follows_is_dropped_after_the_resume_window() -> None:
    rr, view, _ = setup_hub()
    hub = Hub({"mini": view}, resume_s=10, resume_frames=100)
    ticks = rr.run()

    def feed(t: float) -> int:
        for topic, _, rec in next(ticks):
            view.apply(topic, rec)
        return hub.tick(t).frames_encoded

    sub, held = Subscriber(), {}
    hub.subscribe(sub, "runner:mini:1")
    hub.subscribe(sub, "standings:mini", top=2)
    assert feed(0.0) >= 1 and set(hub.channels) == {("runner:mini:1", None),
                                                    ("standings:mini", 2)}
    drain(hub, sub, held)
    left_at = held["standings:mini"].seq
    hub.drop(sub)
    feed(5.0)  # within the window: still computed, so a returning client resumes
    back = Subscriber()
    hub.subscribe(back, "standings:mini", top=2, since=left_at)
    feed(6.0)
    assert {f["type"] for f in drain(hub, back, held)} <= {"update"}
    hub.drop(back)
    feed(7.0)  # the first tick without a subscriber starts the channel's idle time
    assert feed(17.0) == 0 and hub.channels == {}  # 10 s unfollowed: gone, no work
    late = Subscriber()
    hub.subscribe(late, "standings:mini", top=2, since=held["standings:mini"].seq)
    feed(18.0)
    assert [f["type"] for f in drain(hub, late, {})] == ["snapshot"]


def test_distinct_channels_are_capped_overall() -> None:
    _, view, _ = setup_hub()
    hub = Hub({"mini": view}, max_channels=2)
    a, b = Subscriber(), Subscriber()
    hub.subscribe(a, "standings:mini")
    hub.subscribe(a, "flow:mini")
    with pytest.raises(ChannelError) as refused:
        hub.subscribe(b, "standings:mini", top=3)
    assert refused.value.code == "too_many_channels" and "at most 2" in str(refused.value)
    hub.subscribe(b, "standings:mini")  # one already served: always fine
    hub.tick(0.0)
    assert len(hub.channels) == 2


def test_a_standings_update_carries_only_the_splits_a_client_lacks() -> None:
    from broadcast.channels import checkpoint_tails

    a, b, c = ({"rank": i, "bib": x, "t_ms": 1000 * i} for i, x in enumerate("abc", 1))
    held = {"cp": [a, b]}
    assert checkpoint_tails([{"id": "cp", "km": 5.0, "splits": [a, b, c]}], held) == \
        [{"id": "cp", "km": 5.0, "from": 2, "splits": [c]}]  # one runner passed: one split
    refit = {**a, "t_ms": 900}  # a late fix moved the first split: all from there
    assert checkpoint_tails([{"id": "cp", "km": 5.0, "splits": [refit, b]}], held)[0] == \
        {"id": "cp", "km": 5.0, "from": 0, "splits": [refit, b]}
    moved = {**b, "t_ms": 2500}  # a change in the middle, the entries after it equal
    assert checkpoint_tails([{"id": "cp", "km": 5.0, "splits": [a, moved, c]}],
                            {"cp": [a, b, c]})[0]["from"] == 1
    assert checkpoint_tails([{"id": "new", "km": 9.0, "splits": [a]}], held)[0]["from"] == 0



def test_numbers_go_out_rounded_to_what_a_person_reads() -> None:
    row = {"bib": "7", "progress_m": 1234.5678, "gap_leader_s": 61.23456, "t_ms": 17,
           "lat": 43.0123456789, "lon": -2.987654321, "km": 5.00049, "rank": 3,
           "track": [[12.3456, 678.9]], "ratio": 0.123456}
    out = compact({"rows": [row], "leader": None})
    assert out == {"rows": [{"bib": "7", "progress_m": 1235, "gap_leader_s": 61.2, "t_ms": 17,
                             "lat": 43.01235, "lon": -2.98765, "km": 5.0, "rank": 3,
                             "track": [[12.3, 679]], "ratio": 0.123456}], "leader": None}
    assert row["progress_m"] == 1234.5678  # the views' state is not changed


def test_a_changed_row_carries_only_its_changed_fields() -> None:
    from broadcast.channels import row_change

    held = {"bib": "7", "name": "Ane", "country": "ES", "progress_m": 100.0, "rank": 3}
    now = {**held, "progress_m": 180.0, "rank": 2}
    assert row_change(now, held) == {"bib": "7", "progress_m": 180.0, "rank": 2}
    assert row_change(now, None) == now  # a bib the client does not hold: whole
    assert row_change({**held, "last_seen_s": 9.0}, {**held, "last_seen_s": 4.0}) is None
    assert row_change({**now, "last_seen_s": 9.0}, {**held, "last_seen_s": 4.0}) == \
        {"bib": "7", "progress_m": 180.0, "rank": 2}  # the client computes last_seen_s


def test_ranks_are_left_to_the_order_when_the_ranked_rows_lead_it() -> None:
    from broadcast.channels import DERIVED_FIELDS, ranked_prefix, row_change

    rows = {"a": {"rank": 1}, "b": {"rank": 2}, "c": {"rank": None}, "d": {"rank": None}}
    assert ranked_prefix(["a", "b", "c", "d"], rows) == 2
    assert ranked_prefix(["c", "d"], rows) == 0
    assert ranked_prefix(["b", "a", "c"], rows) is None  # a rank not its place
    assert ranked_prefix(["a", "c", "b"], rows) is None  # a ranked row after an unranked
    held = {"bib": "7", "progress_m": 100.0, "rank": 3}
    assert row_change({**held, "rank": 2}, held, DERIVED_FIELDS) is None  # only its rank
    assert row_change({**held, "rank": 2, "progress_m": 150.0}, held, DERIVED_FIELDS) == \
        {"bib": "7", "progress_m": 150.0}


def test_standings_updates_leave_ranks_out_and_still_rebuild_the_board() -> None:
    rr, view, hub = setup_hub()
    sub, whole = Subscriber(), ClientChannel("standings:mini")
    hub.subscribe(sub, "standings:mini")
    updates, moves, ranks = 0, 0, {}
    for i, records in enumerate(rr.run()):
        for topic, _, rec in records:
            view.apply(topic, rec)
        hub.tick(float(i + 1))
        for frame in hub.take(sub, float(i + 1)):
            msg = orjson.loads(frame)
            if msg["type"] == "update":
                updates += 1
                assert "ranked" in msg["data"]
                assert all("rank" not in r for r in msg["data"]["rows"])
            whole.apply(msg)
        assert whole.state is not None
        for row in whole.state.get("runners", []):
            moves += ranks.get(row["bib"], row["rank"]) != row["rank"]
            ranks[row["bib"]] = row["rank"]
        assert without_clock(whole.state) == without_clock(compact(view.board.board or {}))
    assert updates > 10 and moves > 0  # ranks changed, and came from the order alone


def test_subscriptions_wait_until_the_views_are_rebuilt_and_the_channel_reaches_since() -> None:
    rr, view, hub = setup_hub()
    ready = False
    hub.ready = lambda: ready
    ticks = rr.run()
    for topic, _, rec in next(ticks):
        view.apply(topic, rec)
    early, ahead = Subscriber(), Subscriber()
    hub.subscribe(early, "standings:mini")
    hub.tick(1.0)
    assert hub.take(early, 1.0) == []  # still reading Kafka: no empty or old snapshot
    ready = True
    hub.tick(2.0)
    (snap,) = [orjson.loads(f) for f in hub.take(early, 2.0)]
    assert snap["type"] == "snapshot" and snap["seq"] == view.board.seq > 0
    # A client that saw seq S on a broadcaster further on: nothing below S, ever.
    target = snap["seq"] + 1
    hub.subscribe(ahead, "standings:mini", since=target)
    t, seqs = 2.0, []
    while not seqs:
        for topic, _, rec in next(ticks):
            view.apply(topic, rec)
        t += 1
        hub.tick(t)
        seqs = [orjson.loads(f)["seq"] for f in hub.take(ahead, t)]
    assert min(seqs) >= target


def test_a_top_n_client_gets_whole_rows_for_bibs_entering_its_top() -> None:
    rr, view, hub = setup_hub()
    sub, held = Subscriber(), {}
    hub.subscribe(sub, "standings:mini", top=1)
    t = 0.0
    for records in rr.run():
        for topic, _, rec in records:
            view.apply(topic, rec)
        t += 1
        hub.tick(t)
        drain(hub, sub, held)  # the client asserts nothing is missing as it merges
        top = without_clock(held["standings:mini"].state)["runners"]
        assert top == without_clock({"runners": compact(view.board.board["runners"][:1])})[
            "runners"]


def test_the_subscription_count_follows_subscribes_replacements_and_drops() -> None:
    _, _, hub = setup_hub()
    a, b = Subscriber(), Subscriber()
    hub.subscribe(a, "standings:mini")
    hub.subscribe(a, "standings:mini", top=3)  # a replacement, not one more
    hub.subscribe(a, "flow:mini")
    hub.subscribe(b, "flow:mini")
    assert hub.subscriptions == 3
    assert hub.unsubscribe(a, "flow:mini") and not hub.unsubscribe(a, "flow:mini")
    hub.drop(b)
    hub.drop(b)
    assert hub.subscriptions == 1 == len(a.subs)


def test_a_window_of_standings_updates_goes_as_one_whatever_the_ticks() -> None:
    rr, view, hub = setup_hub(window_ms=60_000)
    sub, held = Subscriber(), {}
    hub.subscribe(sub, "standings:mini")
    updates = []  # (generated_ms, base_seq, seq) of each frame
    for i, records in enumerate(rr.run()):
        for topic, _, rec in records:
            view.apply(topic, rec)
        if i % 2:  # ticks come at any time: the frames do not follow them
            continue
        hub.tick(float(i))
        updates += [(f["data"]["generated_ms"], f["data"]["base_seq"], f["seq"])
                    for f in drain(hub, sub, held) if f["type"] == "update"]
    windows = [g // 60_000 for g, _, _ in updates]
    assert len(windows) > 5 and len(set(windows)) == len(windows)  # one frame a window
    assert all(later[1] == before[2] for before, later in itertools.pairwise(updates))
    assert view.holding  # the last window waits for its end
    hub.tick(99.0, now_ms=(windows[-1] + 2) * 60_000 + 15_000)
    assert [f["type"] for f in drain(hub, sub, held)] == ["update"] and not view.holding


def test_in_a_quiet_race_an_update_waits_for_no_window() -> None:
    rr, view, hub = setup_hub(window_ms=10_000)  # records 20 s apart: windows between empty
    sub, held = Subscriber(), {}
    hub.subscribe(sub, "standings:mini")
    sent = 0
    for i, records in enumerate(rr.run()):
        for topic, _, rec in records:
            view.apply(topic, rec)
        hub.tick(float(i))  # no wall clock: only a record could close a window
        assert not view.holding
        sent += sum(f["type"] == "update" for f in drain(hub, sub, held))
    assert sent > 5
    assert without_clock(held["standings:mini"].state) == without_clock(compact(rr.board))


def test_a_window_ahead_of_the_wall_clock_is_held_one_window_at_most() -> None:
    # The processors' clock is the latest fix's when that is later than the wall clock
    # (a replayed or sped-up race): a window that never ends on the wall clock used to
    # hold every update until a record of a later window came.
    rr, view, hub = setup_hub(window_ms=60_000)
    sub, held = Subscriber(), {}
    hub.subscribe(sub, "standings:mini")
    records = rr.run()
    for _ in range(3):
        for topic, _, rec in next(records):
            view.apply(topic, rec)
    wall = 1_000  # far before every window of the race's clock
    hub.tick(0.0, now_ms=wall)
    drain(hub, sub, held)
    for topic, _, rec in next(records):
        view.apply(topic, rec)
    hub.tick(1.0, now_ms=wall)
    drain(hub, sub, held)
    if not view.holding:  # this record's window followed an empty one: it went at once
        for topic, _, rec in next(records):
            view.apply(topic, rec)
        hub.tick(1.5, now_ms=wall)
        drain(hub, sub, held)
    assert view.holding
    hub.tick(2.0, now_ms=wall + 60_000)  # a whole window later, not yet with its grace
    assert view.holding
    hub.tick(3.0, now_ms=wall + 75_000)
    assert [f["type"] for f in drain(hub, sub, held)] == ["update"] and not view.holding
