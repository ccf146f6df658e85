"""A websocket client's outgoing queue (sans-I/O).

Frames wait here until the client's writer sends them. At most one frame per channel
waits for the tick's updates: a newer update of a channel replaces the waiting one in
its place in the queue (a card or checkpoint update by the newer update, a standings,
flow or control update by the channel's current snapshot, since those updates only make
sense in sequence). So a slow client costs a bounded amount of memory and never more
than the channels it watches; ``oldest_wait`` tells how far behind it is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable


class Outbox:
    """Frames waiting to be written to one client, oldest first."""

    def __init__(self, max_frames: int = 1024) -> None:
        self.max_frames = max_frames
        self._queue: deque[list[object]] = deque()  # [key, frame, first-enqueued t, snapshot?]
        self._latest: dict[Hashable, list[object]] = {}  # key -> its newest waiting item
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
        item: list[object] = [key, frame, now, snapshot]
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
        # An update cannot stand in for a snapshot the client has not had yet.
        whole = delta or bool(waiting[3])
        waiting[1] = snapshot() if whole else frame  # keeps its place and its age
        waiting[3] = whole
        self.dropped += 1
        return True

    def take(self) -> tuple[Hashable | None, bytes] | None:
        """The oldest waiting frame and its channel key, or None."""
        if not self._queue:
            return None
        item = self._queue.popleft()
        key = item[0]
        if key is not None and self._latest.get(key) is item:
            del self._latest[key]
        return key, item[1]  # type: ignore[return-value]

    def discard(self, key: Hashable) -> None:
        """Forget the frames of a channel the client left."""
        self._queue = deque(i for i in self._queue if i[0] != key)
        self._latest.pop(key, None)

    def oldest_wait(self, now: float) -> float:
        """Seconds the oldest waiting frame has waited (0 when none waits)."""
        return now - self._queue[0][2] if self._queue else 0.0  # type: ignore[operator]
