"""Race-control commands from the control page: validate, stamp, publish to ``control.v1``.

A command is checked against docs/streams.md before anything is published: the op is
known, its fields are present and typed, and the bib, checkpoint or zone exists in the
race folder. The server fills ``id`` (unless the client gave one, for an idempotent
retry), ``by`` (``control:`` + the token's name) and ``at_ms``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from broadcast.views import RaceView
from zegama_live.records.control import OPS as COMMAND_OPS
from zegama_live.records.control import fields_of
from zegama_live.topics import CONTROL

Json = dict[str, Any]
# op -> (required fields, optional fields), from the commands' records; every field is
# a string unless typed below.
OPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {op: fields_of(op) for op in COMMAND_OPS}
TYPES: dict[str, type] = {"on": bool, "t_ms": int}
MAX_TEXT = 500


class CommandError(ValueError):
    """A command that cannot be published; the message names the field and the fix."""


def build_command(view: RaceView, fields: Any, by: str, now_ms: int) -> Json:
    """The ``control.v1`` record of ``fields`` (the client's command) for race ``view``.

    Raises CommandError naming the unknown op, the missing or mistyped field, or the bib,
    checkpoint or zone the race does not have.
    """
    if not isinstance(fields, dict):
        raise CommandError("'command' must be an object such as {\"op\": \"dnf\", \"bib\": \"7\"}")
    op = fields.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise CommandError(f"op {op!r} is not one of {', '.join(OPS)}")
    required, optional = OPS[op]
    unknown = set(fields) - set(required) - set(optional) - {"op", "id"}
    if unknown:
        raise CommandError(f"{op} has no field {', '.join(sorted(unknown))}; its fields: "
                           f"{', '.join(required + optional)}")
    record: Json = {"v": 1, "race": view.id, "id": _id(fields.get("id")), "op": op}
    for name in required:
        if name not in fields:
            raise CommandError(f"{op} needs field {name!r}")
        record[name] = _typed(name, fields[name])
    for name in optional:
        if name in fields and fields[name] is not None:
            record[name] = _typed(name, fields[name])
    _known(view, record)
    record["by"], record["at_ms"] = by, now_ms
    return record


def _id(given: Any) -> str:
    if given is None:
        return "c-" + uuid.uuid4().hex
    if not isinstance(given, str) or not 1 <= len(given) <= 100:
        raise CommandError("'id' must be a string of 1 to 100 characters (or left out)")
    return given


def _typed(name: str, value: Any) -> Any:
    want = TYPES.get(name, str)
    ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
    if not ok:
        raise CommandError(f"field {name!r} must be {_article(want)}, got {value!r}")
    if want is str and not (value.strip() and len(value) <= MAX_TEXT):
        raise CommandError(f"field {name!r} must be 1 to {MAX_TEXT} characters")
    return value


def _article(want: type) -> str:
    return {bool: "true or false", int: "an integer (epoch ms)"}.get(want, "a string")


def _known(view: RaceView, record: Json) -> None:
    for field, known, what in (("bib", view.bibs, "bib"), ("checkpoint", view.checkpoint_ids,
                                                             "checkpoint"),
                               ("zone", view.zone_ids, "danger zone")):
        value = record.get(field)
        if value is not None and value not in known:
            hint = "" if field == "bib" else f"; use one of {', '.join(sorted(known))}"
            raise CommandError(f"{what} {value!r} is not in race {view.id}{hint}")


class Publisher:
    """Publishes commands to ``control.v1`` keyed by race, acknowledged by all replicas."""

    def __init__(self, bootstrap: str, timeout_s: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect to Kafka. Raises KafkaError when the broker cannot be reached."""
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                          enable_idempotence=True)
        await self._producer.start()

    async def publish(self, record: Json) -> None:
        """Publish and wait for Kafka's acknowledgement.

        Raises RuntimeError when not started, TimeoutError or KafkaError when Kafka did
        not take the record in time.
        """
        if self._producer is None:
            raise RuntimeError("the publisher is not started")
        send = self._producer.send_and_wait(CONTROL, orjson.dumps(record),
                                            key=record["race"].encode())
        await asyncio.wait_for(send, self.timeout_s)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
