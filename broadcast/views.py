"""One race's live state rebuilt from the processors' topics (sans-I/O).

``RaceView.apply(topic, record)`` takes one decoded record of ``standings.v1``,
``runner-updates.v1``, ``alerts.v1`` or ``control-log.v1`` and updates the board, the
runners' cards and tracks, the open alerts, the control log and the weather alerts of
the danger zones (from the log's ``weather`` commands), skipping duplicates by ``seq``
per key (docs/streams.md). What changed since the last tick accumulates in
``pending`` for the channels to turn into frames.

Standings updates are gathered in windows of ``window_ms`` of their ``generated_ms``
(the processors' clock, the same on every broadcaster): an update whose window follows
an empty one goes at once; the others of one window become one, handed over when a
record of a later window arrives or, without one, at the window's end plus a grace
(``take_pending(now_ms)``). So every broadcaster makes
the same standings frames from the same records, whatever its ticks, and a channel
sends at most one standings update per window (docs/broadcast.md).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from broadcast.standings import Board, merge_updates
from race_engine.alerts import ORDER as ALERT_KINDS
from race_engine.model import Race
from zegama_live.topics import ALERTS, CONTROL_LOG, RUNNER_UPDATES, STANDINGS

Json = dict[str, Any]
LOG_KEPT = 200
# Most urgent first, as race control sees them (docs/race-engine.md, Alerts).
ALERT_ORDER = ALERT_KINDS
ALERT_ACTIONS = frozenset({"raised", "cleared", "acknowledged"})
CARD_STATE = ("name", "status", "reason", "rank", "last_fix_ms", "last_seen_s")
# A card's place in the race comes from the board: the per-runner processors that make
# cards do not rank (docs/streams.md).
RANKING = ("rank", "gap_leader_s", "gap_ahead_s")
# A rejected weather command changed nothing; "unchanged" still says which state holds.
WEATHER_RESULTS = frozenset({"applied", "unchanged"})


@dataclass
class Pending:
    """What changed since the last tick."""

    snapshot: bool = False  # a standings snapshot was applied
    updates: list[Json] = field(default_factory=list)  # standings updates, a window each
    bibs: set[str] = field(default_factory=set)
    alerts: list[Json] = field(default_factory=list)
    log: list[Json] = field(default_factory=list)
    weather: dict[str, Json] = field(default_factory=dict)  # zones whose state changed


class RaceView:
    """The live state of one race, as the broadcaster serves it."""

    def __init__(self, race: Race, window_ms: int = 0) -> None:
        """``window_ms`` 0: every standings update stands alone."""
        self.race = race
        self.window_ms = window_ms
        self._window: tuple[int, Json] | None = None  # the open window: index, its updates
        self._last_window = -2  # the window of the last standings update gathered
        self._held_since: tuple[int, int] | None = None  # (window, wall ms it was first held)
        self.id = race.id
        self.bibs = frozenset(e.bib for e in race.entrants)
        self.checkpoint_ids = frozenset(cp.id for cp in race.checkpoints)
        self.zone_ids = frozenset(z.id for z in race.danger_zones)
        self.board = Board(race.id)
        self.runners: dict[str, Json] = {}  # bib -> {seq, generated_ms, card, track}
        self.alerts: dict[str, Json] = {}  # open alerts by id
        self.alert_seq: dict[str, int] = {}
        self.log: deque[Json] = deque(maxlen=LOG_KEPT)
        self.log_seq = 0
        # zone -> {on, by, t_ms} of the command that set its current state; built from
        # every log record, not only the LOG_KEPT ones, so an old switch is not forgotten.
        self.weather: dict[str, Json] = {}
        self.runner_seq = 0  # highest runner-updates seq applied
        self.control_seq = 0  # highest seq of anything the control channel shows
        self.pending = Pending()
        self.duplicates = 0
        self._rows: tuple[int, dict[str, Json]] = (-1, {})  # board seq, its rows by bib
        # A standings update's seq and its ranked prefix: the same for every standings
        # channel of the race, so the first channel to apply the update works it out.
        self.ranked_at: tuple[int, int | None] = (-1, None)

    def apply(self, topic: str, record: Json) -> bool:
        """Apply one record of ``topic``; True when it changed the view.

        Raises ValueError naming a missing or mistyped field, or an unknown topic.
        """
        if topic == STANDINGS:
            return self._standings(record)
        if topic == RUNNER_UPDATES:
            return self._runner(record)
        if topic == ALERTS:
            return self._alert(record)
        if topic == CONTROL_LOG:
            return self._log(record)
        raise ValueError(f"topic {topic!r} is not one the broadcaster follows")

    def take_pending(self, now_ms: int | None = None) -> Pending:
        """What changed since the last call; starts a new tick. With ``now_ms`` (wall
        clock), an open standings window whose end and grace have passed is closed."""
        if self._window is not None and now_ms is not None:
            grace = self.window_ms // 4
            if self._held_since is None or self._held_since[0] != self._window[0]:
                self._held_since = (self._window[0], now_ms)
            # The window's end has passed on the wall clock, or it was held a whole window
            # and its grace: the processors' clock can run ahead of the wall clock (a
            # replayed race, a device clock ahead) and stand still while a worker that
            # took the race over reads its backlog; its updates must not wait for it.
            if now_ms >= (self._window[0] + 1) * self.window_ms + grace or \
                    now_ms - self._held_since[1] >= self.window_ms + grace:
                self.pending.updates.append(self._window[1])
                self._window = None
        pending, self.pending = self.pending, Pending()
        return pending

    @property
    def holding(self) -> bool:
        """True while a standings window is open (its updates not handed over yet)."""
        return self._window is not None

    def _gather(self, update: Json) -> None:
        """Hand ``update`` over, or merge it into the open window of its ``generated_ms``."""
        if not self.window_ms:
            self.pending.updates.append(update)
            return
        index = int(update.get("generated_ms") or 0) // self.window_ms
        if self._window is not None and self._window[0] != index:
            self.pending.updates.append(self._window[1])
            self._window = None
        if self._window is None and index > self._last_window + 1:
            # The window before had no update: none is due to merge with it, so it goes
            # at once (a quiet race waits for no window); later ones of its window merge.
            self.pending.updates.append(update)
        else:
            self._window = (index, update if self._window is None
                            else merge_updates(self._window[1], update))
        self._last_window = index

    def _standings(self, record: Json) -> bool:
        kind = self.board.apply(record)
        if kind is None:
            return False
        p = self.pending
        if kind == "snapshot":
            p.snapshot = True
            p.updates.clear()
            self._window = None  # the board holds it
            return True
        update = self.board.last_update
        assert update is not None
        self._gather(update)
        return True

    def _runner(self, record: Json) -> bool:
        bib, seq = _str(record, "bib"), _int(record, "seq")
        held = self.runners.get(bib)
        if held is not None and seq <= held["seq"]:
            self.duplicates += 1
            return False
        card, track = record.get("card"), record.get("track")
        if not isinstance(card, dict) or not isinstance(track, list):
            raise ValueError(f"runner-updates record of bib {bib} lacks 'card' or 'track'")
        self.runners[bib] = {"seq": seq, "generated_ms": record.get("generated_ms"),
                             "card": card, "track": track}
        self.runner_seq = max(self.runner_seq, seq)
        self.control_seq = max(self.control_seq, seq)
        self.pending.bibs.add(bib)
        return True

    def _alert(self, record: Json) -> bool:
        seq, action, alert = _int(record, "seq"), record.get("action"), record.get("alert")
        if action not in ALERT_ACTIONS or not isinstance(alert, dict) or "id" not in alert:
            raise ValueError("alerts record needs 'action' raised/cleared/acknowledged and "
                             "an 'alert' with an 'id'")
        aid = alert["id"]
        if seq <= self.alert_seq.get(aid, 0):
            self.duplicates += 1
            return False
        self.alert_seq[aid] = seq
        if action == "cleared":
            self.alerts.pop(aid, None)
        else:
            if action == "acknowledged":
                alert = {**alert, "acknowledged": True, "acknowledged_by": record.get("by")}
            self.alerts[aid] = alert
        self.control_seq = max(self.control_seq, seq)
        self.pending.alerts.append({"action": action, "alert": alert, "by": record.get("by"),
                                    "t_ms": record.get("t_ms")})
        return True

    def _log(self, record: Json) -> bool:
        seq = _int(record, "seq")
        if seq <= self.log_seq:
            self.duplicates += 1
            return False
        entry = {k: v for k, v in record.items() if k != "v"}
        self.log.append(entry)
        self.log_seq = seq
        self.control_seq = max(self.control_seq, seq)
        self.pending.log.append(entry)
        self._weather(entry)
        return True

    def _weather(self, entry: Json) -> None:
        """Track a zone's weather alert from an applied or unchanged ``weather`` entry.

        An entry of another shape is only logged: the processors validated the command,
        and one odd entry must not hide the rest of the log.
        """
        command = entry.get("command")
        if entry.get("op") != "weather" or entry.get("result") not in WEATHER_RESULTS \
                or not isinstance(command, dict):
            return
        zone, on = command.get("zone"), command.get("on")
        if not isinstance(zone, str) or not isinstance(on, bool):
            return
        held = self.weather.get(zone)
        if held is not None and held["on"] == on:
            return  # a repeat: who switched it and when stay those of the first switch
        state = {"on": on, "by": entry.get("by"), "t_ms": entry.get("t_ms")}
        self.weather[zone] = state
        self.pending.weather[zone] = state

    def open_alerts(self) -> list[Json]:
        """Open alerts, most urgent first (kind order, then raise time)."""
        rank = {k: i for i, k in enumerate(ALERT_ORDER)}
        return sorted(self.alerts.values(),
                      key=lambda a: (rank.get(str(a.get("kind")), len(rank)),
                                     a.get("raised_ms") or 0))

    def row(self, bib: str) -> Json | None:
        """``bib``'s row on the latest board, or None."""
        seq, rows = self._rows
        if seq != self.board.seq:
            board = self.board.board or {}
            rows = {r["bib"]: r for r in board.get("runners", [])}
            self._rows = (self.board.seq, rows)
        return rows.get(bib)

    def card(self, bib: str) -> Json | None:
        """``bib``'s latest card with its rank and gaps from the latest board."""
        held = self.runners.get(bib)
        if held is None:
            return None
        row = self.row(bib)
        card: Json = held["card"]
        return card if row is None else {**card, **{k: row.get(k) for k in RANKING}}

    def runner_state(self, bib: str) -> Json:
        """What race control sees of a runner: status, rank, position, last seen."""
        held = self.runners[bib]
        card = self.card(bib) or held["card"]
        state = {k: card.get(k) for k in CARD_STATE}
        pos = card.get("position") or {}
        state.update(progress_m=pos.get("progress_m"), lat=pos.get("lat"), lon=pos.get("lon"),
                     estimated=pos.get("estimated"), generated_ms=held["generated_ms"])
        return state


def _int(record: Json, name: str) -> int:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"field {name!r} must be an integer, got {value!r}")
    return value


def _str(record: Json, name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str):
        raise ValueError(f"field {name!r} must be a string, got {value!r}")
    return value
