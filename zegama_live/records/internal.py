"""The processors' internal records: what goes to the per-race stage (``<app>-race-inputs``)
and to the per-runner stage's command topic (``<app>-runner-commands``)."""

from __future__ import annotations

from typing import Any

import msgspec

from zegama_live.records.codec import Codec


class RaceInput(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    race: str


class JournalBatch(RaceInput, frozen=True, kw_only=True, tag="journal"):
    """New journal entries of runners of one race: ``[bib, n0, entries, digest]`` each
    (RaceStage.on_journal)."""

    runners: list[tuple[str, int, list[list[Any]], int]]


class RunnerSync(RaceInput, frozen=True, kw_only=True, tag="sync"):
    """A runner's whole state and journal count, after the per-race stage asked for it."""

    bib: str
    n: int
    state: dict[str, Any]


class RaceCommand(RaceInput, frozen=True, kw_only=True, tag="command"):
    """A race command (``RACE_OPS``) for the per-race stage to apply and audit."""

    command: dict[str, Any]


class CommandAudit(RaceInput, frozen=True, kw_only=True, tag="audit"):
    """The audit entry of a runner command the per-runner stage applied."""

    entry: dict[str, Any]


RACE_INPUTS_CODEC: Codec[Any] = Codec(JournalBatch | RunnerSync | RaceCommand | CommandAudit,
                                      "race-inputs")
