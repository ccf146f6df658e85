"""Race control's commands (``control.v1``) and their audit (``control-log.v1``).

Every command is declared here once, as a Struct whose ``op`` is its tag: the
broadcaster checks a page's command against it, the processors route it by its
``applies_to`` (``runner``: the per-runner stage, keyed ``race:bib``; ``race``: the
per-race stage), and the pages read the ops from the served schema.

    {"v": 1, "race": "zegama-2026", "id": "c-01HZX...", "op": "dnf", "bib": "7",
     "reason": "hypothermia at Aratz", "by": "control:maite", "at_ms": 1779001923000}
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec

from zegama_live.records.codec import Codec


class Command(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True,
              tag_field="op"):
    """Fields every command has: the race, the command's id, who issued it and when."""

    applies_to: ClassVar[str] = "runner"
    v: Literal[1] = 1
    race: str
    id: str | None = None
    by: str | None = None
    at_ms: int | None = None
    reason: str | None = None


class RunnerCommand(Command, frozen=True, kw_only=True):
    """A command about one runner, applied where the runner's state lives."""

    bib: str


class Dnf(RunnerCommand, frozen=True, kw_only=True, tag="dnf"):
    """The runner did not finish: leaves the ranking; their alerts clear."""


class Dns(RunnerCommand, frozen=True, kw_only=True, tag="dns"):
    """The runner did not start."""


class Dsq(RunnerCommand, frozen=True, kw_only=True, tag="dsq"):
    """The runner is disqualified."""


class Reinstate(RunnerCommand, frozen=True, kw_only=True, tag="reinstate"):
    """Undo a DNF, DNS or DSQ."""


class ResolveSos(RunnerCommand, frozen=True, kw_only=True, tag="resolve_sos"):
    """The runner was reached: their SOS alert clears."""


class ManualSplit(RunnerCommand, frozen=True, kw_only=True, tag="manual_split"):
    """A volunteer's radio call: wins over GPS and chip."""

    checkpoint: str
    t_ms: int


class Ack(Command, frozen=True, kw_only=True, tag="ack"):
    """The alert stays open, marked acknowledged. Applied where the alert's runner is
    (an alert id is ``race:bib:kind[:subject]``)."""

    alert_id: str


class Weather(Command, frozen=True, kw_only=True, tag="weather"):
    """A weather alert on or off for a danger zone of race.toml."""

    applies_to: ClassVar[str] = "race"
    zone: str
    on: bool


class Reassign(Command, frozen=True, kw_only=True, tag="reassign"):
    """The device's fixes count for ``bib`` from now on."""

    applies_to: ClassVar[str] = "race"
    device: str
    bib: str


COMMANDS: tuple[type[Command], ...] = (Dnf, Dns, Dsq, Reinstate, ResolveSos, ManualSplit,
                                       Ack, Weather, Reassign)
AnyCommand = (Dnf | Dns | Dsq | Reinstate | ResolveSos | ManualSplit | Ack | Weather
              | Reassign)
OPS: dict[str, type[Command]] = {
    c.__struct_config__.tag: c for c in COMMANDS}  # type: ignore[misc]
RUNNER_OPS = frozenset(op for op, c in OPS.items() if c.applies_to == "runner")
RACE_OPS = frozenset(op for op, c in OPS.items() if c.applies_to == "race")
CONTROL_CODEC: Codec[Any] = Codec(AnyCommand, "control.v1")


def runner_of(cmd: dict[str, Any]) -> str | None:
    """The bib a runner command is about (an ``ack``'s from its alert id), or None."""
    if cmd.get("op") == "ack":
        parts = str(cmd.get("alert_id", "")).split(":")
        return parts[1] if len(parts) >= 3 and parts[0] == cmd.get("race") else None
    bib = cmd.get("bib")
    return bib if isinstance(bib, str) else None


def fields_of(op: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required, optional) fields a client gives for ``op``, besides ``op`` and ``id``;
    the envelope (``v``, ``race``, ``by``, ``at_ms``) is filled by the server."""
    info = msgspec.structs.fields(OPS[op])
    envelope = {"v", "race", "id", "by", "at_ms"}
    required = tuple(f.name for f in info if f.required and f.name not in envelope)
    optional = tuple(f.name for f in info if not f.required and f.name not in envelope)
    return required, optional


Result = Literal["applied", "unchanged", "rejected"]


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A ``control-log.v1`` record: one command, who, when, and what came of it."""

    v: Literal[1] = 1
    race: str | None
    seq: int | None = None
    t_ms: int
    id: str | None
    op: str | None
    by: str | None
    at_ms: int | None
    result: Result
    error: str | None
    command: dict[str, Any]


CONTROL_LOG_CODEC: Codec[AuditEntry] = Codec(AuditEntry, "control-log.v1")
