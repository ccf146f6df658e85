"""The processors' internal records.

``<app>-race-board`` (key race) carries to the per-race stage what it needs: the
summaries of the runners that changed in a round (``RunnerSummaries``), the race commands to apply
(``RaceCommand``) and the audit of the runner commands the per-runner stage applied
(``CommandAudit``). ``<app>-race-settings`` (key race, compacted) carries each race's
settings that every worker's alert rules need (``RaceSettings``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from zegama_live.records.codec import Codec
from zegama_live.records.outputs import Source, StatusName


class RaceInput(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    race: str


class RunnerSummaryRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the board needs of one runner (race_engine.summary). The curve (the
    runner's progress envelope: metres, and ms since the race start) is carried from
    point ``start`` on; the points before it are the ones sent before."""

    race: str
    bib: str
    status: StatusName
    reason: str
    last_t: int | None
    splits: list[tuple[str, int, Source]]  # (checkpoint, epoch ms, source), unclamped
    errs: dict[str, float] = {}  # checkpoint -> a GPS split's err_s (race_engine.runner)
    start: int
    m: list[float]
    t: list[int]


class RunnerSummaries(RaceInput, frozen=True, kw_only=True, tag="summaries"):
    """The summaries of one race's runners that changed in one round of a worker."""

    runners: list[RunnerSummaryRecord]


class RaceCommand(RaceInput, frozen=True, kw_only=True, tag="command"):
    """A race command (``RACE_OPS``) for the per-race stage to apply and audit."""

    command: dict[str, Any]


class CommandAudit(RaceInput, frozen=True, kw_only=True, tag="audit"):
    """The audit entry of a runner command the per-runner stage applied."""

    entry: dict[str, Any]


RaceBoardInput = RunnerSummaries | RaceCommand | CommandAudit
RACE_BOARD_CODEC: Codec[Any] = Codec(RaceBoardInput, "race-board")


class RaceSettings(msgspec.Struct, frozen=True, kw_only=True):
    """A race's settings for every worker: danger zones under a weather alert and the
    device -> bib reassignments. ``seq`` orders them."""

    race: str
    seq: int
    weather: list[str]
    devices: dict[str, str]


RACE_SETTINGS_CODEC: Codec[RaceSettings] = Codec(RaceSettings, "race-settings")
