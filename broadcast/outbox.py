"""A websocket client's outgoing queue (sans-I/O).

Frames wait here between ticks, or while the client's socket is backed up. A channel
has at most one place in the queue: a newer card (a whole-state channel) replaces the
waiting one there; an update of a delta channel (standings, checkpoint, flow, control:
each update needs the one before it) is appended to the waiting ones, up to
``MAX_CHAIN``, after which they all give way to the channel's current snapshot. So a
client a little behind catches up with the updates it missed, one far behind with one
snapshot of its own channel, and a slow client costs a bounded amount of memory, never
more than the channels it watches. ``oldest_wait`` tells how far behind it is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable

MAX_CHAIN = 16  # delta updates of one channel waiting before a snapshot replaces them


class _Item:
    """One channel's place in the queue (or one reply): its frames, oldest first."""

    __slots__ = ("frames", "key", "since", "snapshot")

    def __init__(self, key: Hashable | None, frame: bytes, since: float, snapshot: bool) -> None:
        self.key = key
        self.frames = [frame]
        self.since = since  # when its first frame was queued: the lag counts from there
        self.snapshot = snapshot


class Outbox:
    """Frames waiting to be written to one client, oldest first."""

    def __init__(self, max_frames: int = 1024) -> None:
        self.max_frames = max_frames
        self._queue: deque[_Item] = deque()
        self._latest: dict[Hashable, _Item] = {}  # key -> its waiting item
        self.dropped = 0
        self.overflowed = False

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, key: Hashable | None, frame: bytes, now: float,
             snapshot: bool = False) -> None:
        """Queue ``frame`` after everything waiting (snapshots, replays, replies)."""
        if len(self._queue) >= self.max_frames:
            self.overflowed = True
            return
        item = _Item(key, frame, now, snapshot)
        self._queue.append(item)
        if key is not None:
            self._latest[key] = item

    def offer(self, key: Hashable, frame: bytes, delta: bool,
              snapshot: Callable[[], bytes], now: float) -> bool:
        """Queue a tick's ``frame`` of channel ``key``; True when it superseded a waiting one."""
        waiting = self._latest.get(key)
        if waiting is None:
            self.push(key, frame, now)
            return False
        if delta and not waiting.snapshot and len(waiting.frames) < MAX_CHAIN:
            waiting.frames.append(frame)
            return False
        # An update cannot stand in for a snapshot the client has not had yet, nor for
        # the delta updates it would have to follow.
        whole = delta or waiting.snapshot
        waiting.frames = [snapshot() if whole else frame]  # keeps its place and its age
        waiting.snapshot = whole
        self.dropped += 1
        return True

    def take(self) -> tuple[Hashable | None, bytes] | None:
        """The oldest waiting frame and its channel key, or None."""
        if not self._queue:
            return None
        item = self._queue[0]
        frame = item.frames.pop(0)
        if not item.frames:
            self._forget(self._queue.popleft())
        return item.key, frame

    def take_all(self) -> list[bytes]:
        """Every waiting frame, oldest first; the queue is empty after."""
        frames = [frame for item in self._queue for frame in item.frames]
        self._queue.clear()
        self._latest.clear()
        return frames

    def discard(self, key: Hashable) -> None:
        """Forget the frames of a channel the client left."""
        self._queue = deque(i for i in self._queue if i.key != key)
        self._latest.pop(key, None)

    def oldest_wait(self, now: float) -> float:
        """Seconds the oldest waiting frame has waited (0 when none waits)."""
        return now - self._queue[0].since if self._queue else 0.0

    def _forget(self, item: _Item) -> None:
        if item.key is not None and self._latest.get(item.key) is item:
            del self._latest[item.key]
