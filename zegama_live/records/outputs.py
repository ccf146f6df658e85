"""The processors' output records: ``standings.v1``, ``runner-updates.v1``, ``alerts.v1``.

The shapes are what the race engine returns (``RaceEngine.board``,
``RaceEngine.runner_view``, ``Alert.to_dict``), declared here as typed records so that
producers, consumers and the documents (docs/streams.md, the feed's OpenAPI, the
websocket schema) share one definition. Alert kinds, split sources and statuses come
from the race engine, where they are declared. Numbers are seconds, metres and epoch ms.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from race_engine.alerts import ORDER as ALERT_KINDS
from race_engine.alerts import SEVERITY
from race_engine.model import Status
from race_engine.runner import SOURCES
from zegama_live.records.codec import Codec

# Declared in the race engine; the records take them from there.
AlertKind = Literal[ALERT_KINDS]  # type: ignore[valid-type]
Severity = Literal[tuple(sorted(set(SEVERITY.values())))]  # type: ignore[misc]
Source = Literal[SOURCES]  # type: ignore[valid-type]
StatusName = Literal[tuple(s.value for s in Status)]  # type: ignore[misc]
AlertAction = Literal["raised", "cleared", "acknowledged"]
Point = Annotated[list[float], msgspec.Meta(min_length=2, max_length=2)]


class Struct(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the output records (frozen, fields by name)."""


class RunnerIdentity(Struct, kw_only=True):
    """Who a runner is and their status, in a board row and on a card."""

    bib: str
    name: str
    sex: str
    category: str
    country: str
    status: StatusName
    reason: str


class Row(RunnerIdentity, kw_only=True):
    """A runner's line on the board."""

    rank: int | None
    progress_m: float | None
    checkpoint: str | None  # furthest checkpoint passed
    t_ms: int | None  # when the runner was at progress_m
    elapsed_s: float | None
    # Ranks and gaps are taken at one common race time (race_engine.board): where the
    # runner is then (progress_m moved forward at its pace, 10 m), and whether that is
    # an estimate after over a minute of silence.
    est_m: float | None
    estimated: bool
    gap_leader_s: float | None  # whole seconds, >= 0; 0 for the leader
    gap_ahead_s: float | None  # whole seconds, >= 0
    tied: bool  # level with the runner ranked ahead (gap_ahead_s 0)
    record_delta_s: float | None
    record_delta: str | None
    last_fix_ms: int | None
    last_seen_s: float | None


class CheckpointSplit(Struct, kw_only=True):
    rank: int
    bib: str
    name: str
    t_ms: int
    elapsed_s: float
    gap_s: float  # behind the first at this checkpoint
    source: Source
    err_s: float | None  # a GPS split's 95% half-width (s); None for chip and manual


class CheckpointSplits(Struct, kw_only=True):
    """The runners who passed one checkpoint, ranked by split time."""

    id: str
    km: float
    splits: list[CheckpointSplit]


class Finisher(Struct, kw_only=True):
    rank: int
    bib: str
    name: str
    t_ms: int
    time_s: float
    gap_s: float


class Board(Struct, kw_only=True):
    """The whole standings of a race."""

    v: Literal[1] = 1
    race: str
    generated_ms: int
    leader: str | None
    runners: list[Row]
    checkpoints: list[CheckpointSplits]
    finishers: list[Finisher]


class StandingsSnapshot(Struct, kw_only=True, tag_field="type", tag="snapshot"):
    v: Literal[1] = 1
    race: str
    seq: int
    generated_ms: int
    board: Board


class StandingsChange(Struct, kw_only=True):
    """What changed since the standings record ``base_seq`` (docs/streams.md): a
    ``standings.v1`` update without its ``v`` and ``type``, as the websocket carries it."""

    race: str
    seq: int
    base_seq: int | None
    generated_ms: int
    leader: str | None
    order: list[str]
    rows: list[Row]
    checkpoints: list[CheckpointSplits]
    finishers: list[Finisher] | msgspec.UnsetType = msgspec.UNSET  # present when changed


class StandingsUpdate(StandingsChange, kw_only=True, tag_field="type", tag="update"):
    v: Literal[1] = 1


Standings = StandingsSnapshot | StandingsUpdate


class Position(Struct, kw_only=True):
    progress_m: float
    lat: float
    lon: float
    estimated: bool


class CardSplit(Struct, kw_only=True):
    checkpoint: str
    name: str
    km: float
    t_ms: int
    elapsed_s: float
    source: Source
    err_s: float | None  # a GPS split's 95% half-width (s); None for chip and manual


class Eta(Struct, kw_only=True):
    """A projected arrival with its p10-p90 band and the model that made it."""

    checkpoint: str
    t_ms: int
    p10_ms: int
    p90_ms: int
    elapsed_s: float
    model: str


class CutoffChance(Struct, kw_only=True):
    """The estimated chance of reaching a checkpoint before its cutoff (from the
    projection's band: race_engine.projections.p_by)."""

    checkpoint: str
    name: str
    cutoff_ms: int
    p_make: float  # 0-1, two decimals


class Card(RunnerIdentity, kw_only=True):
    """A runner's public card (``RaceEngine.runner_view``)."""

    v: Literal[1] = 1
    race: str
    position: Position
    last_fix_ms: int | None
    last_seen_s: float | None
    splits: list[CardSplit]
    rank: int | None
    gap_leader_s: float | None
    gap_ahead_s: float | None
    record_delta_s: float | None
    record_delta: str | None
    reference: str
    finish_eta: Eta | None
    etas: list[Eta]
    cutoffs: list[CutoffChance]  # the cutoffs still ahead, in course order


class RunnerUpdate(Struct, kw_only=True):
    """A ``runner-updates.v1`` record: the runner's card and race-flow track."""

    v: Literal[1] = 1
    race: str
    bib: str
    seq: int
    generated_ms: int
    card: Card
    track: list[Point]  # [elapsed_s, progress_m] pairs


class Alert(Struct, kw_only=True):
    id: str  # race:bib:kind[:subject], stable while the condition lasts
    kind: AlertKind
    severity: Severity
    race: str
    bib: str
    subject: str | None
    progress_m: float
    lat: float | None
    lon: float | None
    raised_ms: int
    message: str
    acknowledged: bool = False


class AlertRecord(Struct, kw_only=True):
    """An ``alerts.v1`` record: an alert raised, cleared or acknowledged (``by``)."""

    v: Literal[1] = 1
    race: str
    seq: int
    t_ms: int
    action: AlertAction
    alert: Alert
    by: str | None = None


STANDINGS_CODEC: Codec[Any] = Codec(Standings, "standings.v1")
RUNNER_UPDATES_CODEC: Codec[RunnerUpdate] = Codec(RunnerUpdate, "runner-updates.v1")
ALERTS_CODEC: Codec[AlertRecord] = Codec(AlertRecord, "alerts.v1")
