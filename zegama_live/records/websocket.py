"""The broadcaster's websocket protocol (docs/websocket.md) as records.

A client's requests are tagged by ``op``, the server's messages by ``type``. A channel
frame (``snapshot``, ``update``) carries ``data`` whose shape depends on the channel's
kind and the frame's type: :func:`decode_frame` checks it against the record of that
pair (``CHANNEL_DATA``), so every frame the tests receive from a real broadcaster is
checked against these records, and ``zegama-live topics --websocket`` writes their
JSON Schema to ``docs/websocket.schema.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import msgspec

from zegama_live.records.codec import Codec, RecordError
from zegama_live.records.control import CONTROL_CODEC, AuditEntry
from zegama_live.records.outputs import (
    Alert,
    AlertAction,
    Board,
    Card,
    CheckpointSplit,
    Point,
    Row,
    StandingsChange,
    StatusName,
)

WEBSOCKET_SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "websocket.schema.json"
ErrorCode = Literal["bad_json", "bad_request", "unknown_op", "unknown_channel",
                    "unknown_race", "unauthorized", "not_subscribed",
                    "too_many_subscriptions", "too_many_channels", "invalid_command",
                    "publish_failed", "ahead"]


# --------------------------------------------------------------- client to server

class Request(msgspec.Struct, frozen=True, kw_only=True, tag_field="op"):
    """A client's message."""


class Subscribe(Request, frozen=True, kw_only=True, tag="subscribe"):
    channel: str
    since: int | None = None  # resume after this seq
    top: int | None = None  # standings only: the first N rows (1..500)
    token: str | None = None  # control only


class Unsubscribe(Request, frozen=True, kw_only=True, tag="unsubscribe"):
    channel: str


class CommandRequest(Request, frozen=True, kw_only=True, tag="command"):
    race: str
    command: dict[str, Any]  # a control.v1 command without its envelope (streams.md)


class Ping(Request, frozen=True, kw_only=True, tag="ping"):
    pass


Requests = Subscribe | Unsubscribe | CommandRequest | Ping
REQUEST_CODEC: Codec[Any] = Codec(Requests, "websocket request")


# --------------------------------------------------------------- server to client

class Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True,
              tag_field="type"):
    """A server's message."""


class Snapshot(Message, frozen=True, kw_only=True, tag="snapshot"):
    channel: str
    seq: int
    data: dict[str, Any]  # the channel's whole state: CHANNEL_DATA[kind, "snapshot"]


class Update(Message, frozen=True, kw_only=True, tag="update"):
    channel: str
    seq: int
    data: dict[str, Any]  # what changed: CHANNEL_DATA[kind, "update"]


class Heartbeat(Message, frozen=True, kw_only=True, tag="heartbeat"):
    t_ms: int
    # Served races whose board has had no record from the processors for the
    # broadcaster's --stale-after-s -> seconds since the last one; absent when none.
    stale: dict[str, int] = msgspec.field(default_factory=dict)


class Pong(Message, frozen=True, kw_only=True, tag="pong"):
    t_ms: int


class Unsubscribed(Message, frozen=True, kw_only=True, tag="unsubscribed"):
    channel: str


class CommandAck(Message, frozen=True, kw_only=True, tag="ack"):
    id: str
    command: Any  # the control.v1 record as published: checked by decode_frame


class Error(Message, frozen=True, kw_only=True, tag="error"):
    code: ErrorCode
    message: str
    channel: str | None = None  # of a failed subscribe or unsubscribe
    id: str | None = None  # of a failed command


Single = Snapshot | Update | Heartbeat | Pong | Unsubscribed | CommandAck | Error


class Batch(Message, frozen=True, kw_only=True, tag="batch"):
    """What waited for one client at one tick, as one websocket message, in order."""

    messages: list[Single]


Messages = Single | Batch
MESSAGE_CODEC: Codec[Any] = Codec(Messages, "websocket message")


# ------------------------------------------------------------------ channel data

class Data(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of a channel frame's ``data``."""


class CheckpointTail(Data, frozen=True, kw_only=True):
    """A changed checkpoint in a standings update: keep the first ``from`` splits held,
    then append ``splits``."""

    id: str
    km: float
    from_: int = msgspec.field(name="from")
    splits: list[CheckpointSplit]


RowChange = msgspec.defstruct(
    "RowChange", [(f.name, f.type if f.name == "bib" else f.type | msgspec.UnsetType,
                   msgspec.NODEFAULT if f.name == "bib" else msgspec.UNSET)
                  for f in msgspec.structs.fields(Row)],
    kw_only=True, frozen=True, forbid_unknown_fields=True, module=__name__)
RowChange.__doc__ = ("A changed board row: its bib and the fields that changed (all of "
                     "them for a bib the client does not hold)")


class StandingsUpdate(StandingsChange, frozen=True, kw_only=True):
    """A standings update as the websocket carries it: rows as changes, checkpoints as
    tails."""

    rows: list[RowChange]  # type: ignore[valid-type]
    checkpoints: list[CheckpointTail]
    # The first ``ranked`` bibs of the whole board's order are ranks 1..ranked, the rest
    # unranked: the rows then leave ``rank`` out. Absent: the rows carry it.
    ranked: int | msgspec.UnsetType = msgspec.UNSET


class ChannelCheckpoint(Data, frozen=True, kw_only=True):
    id: str
    km: float | None  # None before the checkpoint's first split
    splits: list[CheckpointSplit]


class RunnerCard(Data, frozen=True, kw_only=True):
    """``runner:``: the runner's latest card (rank and gaps from the board) and track."""

    bib: str
    generated_ms: int | None  # None (and card None) before the bib's first record
    card: Card | None
    track: list[Point]


class CheckpointFrame(Data, frozen=True, kw_only=True):
    generated_ms: int | None
    checkpoint: ChannelCheckpoint


class CheckpointChange(Data, frozen=True, kw_only=True):
    """``checkpoint:`` update: the splits the client lacks, as in a standings update."""

    generated_ms: int | None
    checkpoint: CheckpointTail


class FlowTrack(Data, frozen=True, kw_only=True):
    name: str | None
    status: StatusName | None
    track: list[Point]


class FlowTail(Data, frozen=True, kw_only=True):
    name: str | None
    status: StatusName | None
    from_: int = msgspec.field(name="from")  # keep this many points, then append
    points: list[Point]


class FlowSnapshot(Data, frozen=True, kw_only=True):
    runners: dict[str, FlowTrack]


class FlowUpdate(Data, frozen=True, kw_only=True):
    runners: dict[str, FlowTail]


class ControlAlert(Alert, frozen=True, kw_only=True):
    """An open alert as race control sees it: who acknowledged it."""

    acknowledged_by: str | msgspec.UnsetType | None = msgspec.UNSET


class AlertEvent(Data, frozen=True, kw_only=True):
    action: AlertAction
    alert: ControlAlert
    by: str | None
    t_ms: int


class Weather(Data, frozen=True, kw_only=True):
    on: bool
    by: str | None
    t_ms: int


class RunnerState(Data, frozen=True, kw_only=True):
    """What race control sees of a runner, from its card."""

    name: str | None
    status: StatusName | None
    reason: str | None
    rank: int | None
    progress_m: float | None
    lat: float | None
    lon: float | None
    estimated: bool | None
    last_fix_ms: int | None
    last_seen_s: float | None
    generated_ms: int | None


class ControlSnapshot(Data, frozen=True, kw_only=True):
    alerts: list[ControlAlert]
    log: list[AuditEntry]  # control-log.v1 records minus v
    weather: dict[str, Weather]
    runners: dict[str, RunnerState]


class ControlUpdate(Data, frozen=True, kw_only=True):
    alerts: list[AlertEvent] | msgspec.UnsetType = msgspec.UNSET
    log: list[AuditEntry] | msgspec.UnsetType = msgspec.UNSET
    weather: dict[str, Weather] | msgspec.UnsetType = msgspec.UNSET
    runners: dict[str, RunnerState] | msgspec.UnsetType = msgspec.UNSET


CHANNEL_DATA: dict[tuple[str, str], Any] = {
    ("standings", "snapshot"): Board,  # or {} before the race's first standings record
    ("standings", "update"): StandingsUpdate,  # with top: the first N of order and rows
    ("runner", "snapshot"): RunnerCard,
    ("runner", "update"): RunnerCard,
    ("checkpoint", "snapshot"): CheckpointFrame,
    ("checkpoint", "update"): CheckpointChange,
    ("flow", "snapshot"): FlowSnapshot,
    ("flow", "update"): FlowUpdate,
    ("control", "snapshot"): ControlSnapshot,
    ("control", "update"): ControlUpdate,
}


def decode_frame(raw: bytes | str) -> Any:
    """A server message, with a channel frame's ``data`` (and an ack's command)
    checked against its record, each message of a batch too; returns the message.

    Raises:
        RecordError: naming the message or the field that does not fit.
    """
    msg = MESSAGE_CODEC.decode(raw)
    for single in msg.messages if isinstance(msg, Batch) else [msg]:
        _check(single)
    return msg


def _check(msg: Any) -> None:
    """Check a channel frame's ``data`` and an ack's command against their records."""
    if isinstance(msg, Snapshot | Update):
        kind = msg.channel.split(":")[0]
        shape = CHANNEL_DATA.get((kind, "snapshot" if isinstance(msg, Snapshot) else "update"))
        if shape is None:
            raise RecordError(f"websocket message: channel {msg.channel!r} has no known kind")
        if shape is Board and not msg.data and isinstance(msg, Snapshot):
            return
        try:
            msgspec.convert(msg.data, shape)
        except msgspec.ValidationError as e:
            raise RecordError(f"websocket {kind} {type(msg).__name__.lower()}: "
                              f"{str(e).replace('`', chr(39)).replace('$', '$.data', 1)}"
                              ) from None
    elif isinstance(msg, CommandAck):
        CONTROL_CODEC.convert(msg.command)


def schema() -> dict[str, Any]:
    """The JSON Schema of the protocol: requests, messages and each channel's data."""
    shapes = list(dict.fromkeys(CHANNEL_DATA.values()))
    refs, components = msgspec.json.schema_components([Requests, Messages, *shapes])
    by_shape = dict(zip(shapes, refs[2:], strict=True))
    return {"title": "Zegama Live websocket protocol (docs/websocket.md): a client's "
                     "requests, the server's messages, and the data of each channel "
                     "kind's snapshot and update",
            "properties": {"requests": refs[0], "messages": refs[1],
                           **{f"{k} {t}": by_shape[v] for (k, t), v in CHANNEL_DATA.items()}},
            "$defs": components}


def write_schema(path: Path = WEBSOCKET_SCHEMA) -> None:
    path.write_text(json.dumps(schema(), indent=2, sort_keys=True) + "\n")
