"""Channels, subscriptions and the fan-out tick (sans-I/O).

``Hub.tick(now)`` turns each race's changes since the last tick into frames, one per
channel (one per window of standings records for standings and checkpoints), each
encoded once.
``Hub.take(sub, now, writable)`` then gives each subscriber what to write now: for a
subscriber that is caught up and writable, this tick's frames of its channels (for one
channel, the channel's own list: nothing is built per subscriber); otherwise they go
into its outbox behind what waits there, and the outbox is emptied when it is
writable. The connections write what ``take`` gives as one websocket message. New
subscriptions are answered in the tick too, after the updates, so the snapshot (or the
replayed updates) and the frames that follow line up exactly by ``seq``.

A channel is computed only while someone listens: it is made by its first
subscription, kept for ``resume_s`` after its last subscriber left (a client that comes
back within that time resumes with ``since``), then dropped. At most ``max_channels``
exist at once (docs/broadcast.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from broadcast.channels import Channel, ChannelError, check_top, make_channel, parse_name
from broadcast.outbox import Outbox
from broadcast.views import RaceView

Key = tuple[str, int | None]  # channel name, top
MAX_SUBSCRIPTIONS = 64
MAX_CHANNELS = 10_000
AHEAD_WAIT_S = 10.0  # how long a subscription whose since is ahead waits for the channel


@dataclass(eq=False)
class Subscriber:
    """One connection as the hub sees it: its outbox and its subscriptions by name."""

    outbox: Outbox = field(default_factory=Outbox)
    subs: dict[str, Key] = field(default_factory=dict)
    control: dict[str, str] = field(default_factory=dict)  # race -> the token's name
    live: list[Key] = field(default_factory=list)  # channels that send it their frames
    answered: set[Key] = field(default_factory=set)  # got a snapshot or replay this tick


@dataclass
class TickStats:
    """What one tick did, for the metrics."""

    frames_encoded: int = 0
    dropped: int = 0  # updates superseded in slow subscribers' outboxes


class Hub:
    """Every channel of every race served, and who listens to which."""

    def __init__(self, views: dict[str, RaceView], resume_s: float = 60.0,
                 resume_frames: int = 256, max_channels: int = MAX_CHANNELS) -> None:
        self.views = views
        self.resume_s = resume_s
        self.resume_frames = resume_frames
        self.max_channels = max_channels
        self.channels: dict[Key, Channel] = {}
        self._idle: dict[Key, float] = {}  # channel -> when its last subscriber left
        self._by_race: dict[str, list[Channel]] = {race: [] for race in views}
        # (subscriber, channel, since, first tick that could not answer it)
        self._requests: list[tuple[Subscriber, Key, int | None, float | None]] = []
        self._fresh: dict[Key, list[bytes]] = {}  # this tick's frames by channel
        self.stats = TickStats()
        self.subscriptions = 0  # over every subscriber
        # False while the views are still being rebuilt from Kafka: subscriptions wait,
        # so nobody is sent an empty or stale state (the broadcaster sets it).
        self.ready: Callable[[], bool] = lambda: True

    def channel(self, name: str, top: int | None = None) -> Channel:
        """The channel ``name`` (created on first use).

        Raises ChannelError with the protocol's code (unknown_channel, unknown_race,
        bad_request) naming what is wrong.
        """
        kind, race, _ident = parse_name(name)
        check_top(kind, top)  # before it is part of a key: a list would not even hash
        key = (name, top)
        found = self.channels.get(key)
        if found is not None:
            return found
        view = self.views.get(race)
        if view is None:
            raise ChannelError("unknown_race", f"race {race!r} is not served here; races: "
                               f"{', '.join(sorted(self.views))}")
        if len(self.channels) >= self.max_channels:
            raise ChannelError("too_many_channels",
                               f"this broadcaster serves at most {self.max_channels} "
                               "distinct channels at once; subscribe to one already "
                               "served (e.g. standings without top) or try again later")
        made = make_channel(name, view, top, self.resume_s, self.resume_frames)
        self.channels[key] = made
        self._by_race[race].append(made)
        return made

    def subscribe(self, sub: Subscriber, name: str, top: int | None = None,
                  since: int | None = None) -> None:
        """Subscribe ``sub`` from the next tick on (a snapshot, or the updates since ``since``).

        Raises ChannelError (see ``channel``; too_many_subscriptions).
        """
        if name not in sub.subs and len(sub.subs) >= MAX_SUBSCRIPTIONS:
            raise ChannelError("too_many_subscriptions",
                               f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection")
        chan = self.channel(name, top)
        self.unsubscribe(sub, name)
        key = (name, top)
        sub.subs[name] = key
        self.subscriptions += 1
        self._requests.append((sub, key, since, None))
        del chan  # created now so a bad name fails at once, not at the tick

    def unsubscribe(self, sub: Subscriber, name: str) -> bool:
        """Stop ``sub``'s subscription ``name``; False when it had none."""
        key = sub.subs.pop(name, None)
        if key is None:
            return False
        self.subscriptions -= 1
        chan = self.channels.get(key)
        if chan is not None:
            chan.subscribers.discard(sub)
        if key in sub.live:
            sub.live.remove(key)
        sub.outbox.discard(key)
        self._requests = [r for r in self._requests if not (r[0] is sub and r[1] == key)]
        return True

    def drop(self, sub: Subscriber) -> None:
        """Forget a closed connection."""
        for name in list(sub.subs):
            self.unsubscribe(sub, name)

    def tick(self, now: float, now_ms: int | None = None) -> TickStats:
        """Make this tick's frames and answer the subscriptions asked since the last one.
        ``now`` is monotonic seconds (outbox ages), ``now_ms`` the wall clock that closes
        the views' standings windows (None: only a later record closes one).

        Returns the tick's stats; the ``take`` calls that follow add their drops to it."""
        stats = self.stats = TickStats()
        self._forget_idle(now)
        fresh: dict[Key, list[bytes]] = {}
        for race, view in self.views.items():
            pending = view.take_pending(now_ms)
            for chan in self._by_race[race]:
                made = chan.tick(pending, now)
                if made:
                    stats.frames_encoded += len(made)
                    fresh[(chan.name, getattr(chan, "top", None))] = made
        self._fresh = fresh
        requests, self._requests = self._requests, []
        ready = self.ready()
        for sub, key, since, waiting in requests:
            chan = self.channels[key]
            ahead = since is not None and since > chan.current_seq()
            if not ready or ahead:
                # Not rebuilt yet, or the client has seen more of this channel than this
                # broadcaster has (it came from one further on): answering now would send
                # it a seq below its own. It waits, subscribed, until this one is there,
                # and is told after AHEAD_WAIT_S (a seq this channel may never reach).
                waiting = now if waiting is None or not ready else waiting
                if ready and since is not None and now - waiting >= AHEAD_WAIT_S:
                    self._refuse_ahead(sub, key, since, chan.current_seq(), now)
                else:
                    self._requests.append((sub, key, since, waiting))
                continue
            frames = chan.resume(since) if since is not None else None
            if frames is None:
                sub.outbox.push(key, chan.snapshot_frame(), now, snapshot=True)
            for frame in frames or ():
                sub.outbox.push(key, frame, now)
            chan.subscribers.add(sub)
            sub.live.append(key)
            sub.answered.add(key)  # its snapshot (or replay) already holds this tick's frames
        return stats

    def _refuse_ahead(self, sub: Subscriber, key: Key, since: int, seq: int, now: float) -> None:
        self.unsubscribe(sub, key[0])
        sub.outbox.push(None, orjson.dumps({
            "type": "error", "code": "ahead", "channel": key[0],
            "message": f"since {since} is ahead of this broadcaster's seq {seq} after "
                       f"{AHEAD_WAIT_S:g} s: subscribe again without since (a snapshot), or "
                       "reconnect to reach another broadcaster"}), now)

    def holding(self) -> bool:
        """True while a view holds a standings window back: tick again at its end."""
        return any(view.holding for view in self.views.values())

    def take(self, sub: Subscriber, now: float, writable: bool = True) -> list[bytes]:
        """What to write to ``sub`` now, oldest first ([] when nothing, or not ``writable``:
        then this tick's frames wait in its outbox). Call it once per subscriber per tick."""
        fresh, live = self._fresh, sub.live
        if writable and not sub.outbox and not sub.answered:
            if len(live) == 1:  # the common spectator: the channel's own list, shared
                return fresh.get(live[0]) or []
            return [frame for key in live for frame in fresh.get(key, ())]
        for key in live:
            if key in sub.answered:
                continue
            chan = self.channels[key]
            for frame in fresh.get(key, ()):
                if sub.outbox.offer(key, frame, chan.delta, chan.snapshot_frame, now):
                    self.stats.dropped += 1
        sub.answered.clear()
        return sub.outbox.take_all() if writable else []

    def _forget_idle(self, now: float) -> None:
        """Drop the channels nobody has listened to for ``resume_s``."""
        wanted = {r[1] for r in self._requests}
        for key, chan in list(self.channels.items()):
            if chan.subscribers or key in wanted:
                self._idle.pop(key, None)
            elif now - self._idle.setdefault(key, now) >= self.resume_s:
                del self.channels[key], self._idle[key]
                self._by_race[parse_name(key[0])[1]].remove(chan)
