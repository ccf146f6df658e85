"""Race control's commands (``control.v1``): check the envelope, route, audit.

A command is applied where the state it changes lives: a runner's status, SOS, manual
split or an acknowledgement of one of its alerts in the per-runner stage (keyed
``race:bib``), weather and device reassignment in the per-race stage, which passes them
on to every worker as the race's settings. Every command ends as one audit record in
``control-log.v1`` saying who, when, why and what came of it (docs/streams.md).
"""

from __future__ import annotations

from typing import Any

import orjson

from zegama_live.records import RecordError
from zegama_live.records.control import CONTROL_CODEC, RACE_OPS, RUNNER_OPS

__all__ = ["RACE_OPS", "RUNNER_OPS", "CommandError", "audit", "check", "decode_command"]


class CommandError(ValueError):
    """A command that cannot be routed: not JSON, a missing envelope field, unknown op."""


def decode_command(value: bytes, key: bytes | None, races: set[str]) -> dict[str, Any]:
    """The command in a ``control.v1`` record, checked enough to route and audit it.

    Raises:
        CommandError: naming what is wrong.
    """
    try:
        cmd = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise CommandError(f"control.v1 record is not JSON: {e}") from None
    if not isinstance(cmd, dict):
        raise CommandError("a control command is a JSON object")
    if "race" not in cmd and key:
        cmd["race"] = key.decode("utf-8", "replace")
    if cmd.get("race") not in races:
        raise CommandError(f"race {cmd.get('race')!r} is not one of this processor's races")
    op = cmd.get("op")
    if op not in RUNNER_OPS and op not in RACE_OPS:
        raise CommandError(f"unknown control op {op!r}; use one of "
                           f"{', '.join(sorted(RUNNER_OPS | RACE_OPS))}")
    return cmd


def check(cmd: dict[str, Any]) -> str | None:
    """What is wrong with a routable command's fields (``control.v1``'s record), or None.
    A command with bad fields is not applied, but audited as rejected with this."""
    try:
        CONTROL_CODEC.convert(cmd)
    except RecordError as e:
        return str(e)
    return None


def audit(cmd: dict[str, Any], result: str, error: str | None, t_ms: int) -> dict[str, Any]:
    """The audit entry of one command (``seq`` is added when it is published)."""
    return {"v": 1, "race": cmd.get("race"), "t_ms": t_ms, "id": cmd.get("id"),
            "op": cmd.get("op"), "by": cmd.get("by"), "at_ms": cmd.get("at_ms"),
            "result": result, "error": error, "command": cmd}
