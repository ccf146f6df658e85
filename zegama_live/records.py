"""Kafka record schemas of ``pings.v1`` and ``chip-reads.v1``: encode and decode.

Both are JSON objects (orjson) with a version field ``"v": 1``. A consumer refuses a
record of another version rather than guessing; a breaking change means a new topic.
The key of both topics is ``race:bib`` (``topics.runner_key``).

``pings.v1``::

    {"v": 1, "race": "zegama-2026", "bib": "101", "device": "ZGM-0001",
     "t": 1779001200000, "lat": 42.975, "lon": -2.29, "ele": 296.0, "acc": 8.0,
     "bat": 0.81, "sos": false, "speed": 2.9, "heading": 181.0,
     "received": 1779001201234, "source": "osmand", "raw": {...}}

``ele``, ``acc``, ``bat``, ``speed`` (m/s) and ``heading`` (degrees) are null when the
device did not send them. ``raw`` is what the device sent for this fix, untouched.

``chip-reads.v1``::

    {"v": 1, "race": "zegama-2026", "bib": "101", "checkpoint": "sancti-spiritu",
     "t": 1779007392000, "reader": "mat-3", "chip": "E200341201", "received": ...,
     "source": "chip-api", "raw": {...}}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from race_engine.model import ChipRead, Fix

VERSION = 1
PING_SOURCES = frozenset({"batch", "osmand", "osmand-json"})


class RecordError(ValueError):
    """A record that is not a valid record of its topic (wrong version, field or type)."""


@dataclass(frozen=True, slots=True)
class PingRecord:
    """One accepted fix as written to ``pings.v1``."""

    race: str
    bib: str
    fix: Fix
    received_ms: int
    source: str
    speed: float | None = None  # m/s
    heading: float | None = None  # degrees clockwise from north
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChipReadRecord:
    """One accepted timing-mat read as written to ``chip-reads.v1``."""

    race: str
    read: ChipRead
    received_ms: int
    chip: str | None = None
    source: str = "chip-api"
    raw: dict[str, Any] = field(default_factory=dict)


def encode_ping(rec: PingRecord) -> bytes:
    """The ``pings.v1`` value of ``rec``."""
    fix = rec.fix
    return orjson.dumps(
        {
            "v": VERSION, "race": rec.race, "bib": rec.bib, "device": fix.device,
            "t": fix.t, "lat": fix.lat, "lon": fix.lon, "ele": fix.ele, "acc": fix.acc,
            "bat": fix.bat, "sos": fix.sos, "speed": rec.speed, "heading": rec.heading,
            "received": rec.received_ms, "source": rec.source, "raw": rec.raw,
        }
    )


def decode_ping(value: bytes) -> PingRecord:
    """Decode a ``pings.v1`` value. Raises RecordError naming what is wrong."""
    obj = _load(value)
    try:
        fix = Fix(
            device=_str(obj, "device"), t=_int(obj, "t"), lat=_float(obj, "lat"),
            lon=_float(obj, "lon"), ele=_opt_float(obj, "ele"), acc=_opt_float(obj, "acc"),
            bat=_opt_float(obj, "bat"), sos=_bool(obj, "sos"),
        )
        return PingRecord(
            race=_str(obj, "race"), bib=_str(obj, "bib"), fix=fix,
            received_ms=_int(obj, "received"), source=_str(obj, "source"),
            speed=_opt_float(obj, "speed"), heading=_opt_float(obj, "heading"),
            raw=_dict(obj, "raw"),
        )
    except KeyError as exc:
        raise RecordError(f"pings.v1 record lacks field {exc.args[0]!r}") from None


def encode_chip_read(rec: ChipReadRecord) -> bytes:
    """The ``chip-reads.v1`` value of ``rec``."""
    read = rec.read
    return orjson.dumps(
        {
            "v": VERSION, "race": rec.race, "bib": read.bib, "checkpoint": read.checkpoint,
            "t": read.t, "reader": read.reader, "chip": rec.chip,
            "received": rec.received_ms, "source": rec.source, "raw": rec.raw,
        }
    )


def decode_chip_read(value: bytes) -> ChipReadRecord:
    """Decode a ``chip-reads.v1`` value. Raises RecordError naming what is wrong."""
    obj = _load(value)
    try:
        chip = obj.get("chip")
        if chip is not None and not isinstance(chip, str):
            raise RecordError("field 'chip' must be a string or null")
        return ChipReadRecord(
            race=_str(obj, "race"),
            read=ChipRead(
                bib=_str(obj, "bib"), checkpoint=_str(obj, "checkpoint"),
                t=_int(obj, "t"), reader=_str(obj, "reader"),
            ),
            received_ms=_int(obj, "received"), chip=chip,
            source=_str(obj, "source"), raw=_dict(obj, "raw"),
        )
    except KeyError as exc:
        raise RecordError(f"chip-reads.v1 record lacks field {exc.args[0]!r}") from None


def _load(value: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"record is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise RecordError("record must be a JSON object")
    if obj.get("v") != VERSION:
        raise RecordError(f"record version {obj.get('v')!r} is not {VERSION}")
    return obj


def _str(obj: dict[str, Any], name: str) -> str:
    value = obj[name]
    if not isinstance(value, str):
        raise RecordError(f"field {name!r} must be a string")
    return value


def _int(obj: dict[str, Any], name: str) -> int:
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"field {name!r} must be an integer")
    return value


def _float(obj: dict[str, Any], name: str) -> float:
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RecordError(f"field {name!r} must be a finite number")
    return float(value)


def _opt_float(obj: dict[str, Any], name: str) -> float | None:
    return None if obj.get(name) is None else _float(obj, name)


def _bool(obj: dict[str, Any], name: str) -> bool:
    value = obj.get(name, False)
    if not isinstance(value, bool):
        raise RecordError(f"field {name!r} must be true or false")
    return value


def _dict(obj: dict[str, Any], name: str) -> dict[str, Any]:
    value = obj.get(name, {})
    if not isinstance(value, dict):
        raise RecordError(f"field {name!r} must be an object")
    return value
