"""The input topics' records: ``pings.v1`` and ``chip-reads.v1``.

Both are JSON objects with a version field ``"v": 1``. A consumer refuses a record of
another version rather than guessing; a breaking change means a new topic. The key of
both topics is ``race:bib`` (``topics.runner_key``).

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

``Ping`` and ``ChipReadV1`` are the wire records (their codecs are attached to the
topics in ``zegama_live.topics``); ``PingRecord`` and ``ChipReadRecord`` are the same
records as the race engine's values, which ingest builds and the processors consume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec

from race_engine.model import ChipRead, Fix
from zegama_live.records.codec import Codec

VERSION = 1
PING_SOURCES = frozenset({"batch", "osmand", "osmand-json"})
Lat = Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
Lon = Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]


class Ping(msgspec.Struct, frozen=True, kw_only=True):
    """A ``pings.v1`` record: one accepted fix."""

    v: Literal[1]
    race: str
    bib: str
    device: str
    t: int  # fix time, epoch ms
    lat: Lat
    lon: Lon
    ele: float | None = None
    acc: float | None = None
    bat: float | None = None
    sos: bool = False
    speed: float | None = None  # m/s
    heading: float | None = None  # degrees clockwise from north
    received: int  # when ingest accepted it, epoch ms
    source: str
    raw: dict[str, Any] = msgspec.field(default_factory=dict)


class ChipReadV1(msgspec.Struct, frozen=True, kw_only=True):
    """A ``chip-reads.v1`` record: one accepted timing-mat read."""

    v: Literal[1]
    race: str
    bib: str
    checkpoint: str
    t: int
    reader: str
    chip: str | None = None
    received: int
    source: str
    raw: dict[str, Any] = msgspec.field(default_factory=dict)


PINGS_CODEC: Codec[Ping] = Codec(Ping, "pings.v1")
CHIP_READS_CODEC: Codec[ChipReadV1] = Codec(ChipReadV1, "chip-reads.v1")


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
    return PINGS_CODEC.encode(Ping(
        v=VERSION, race=rec.race, bib=rec.bib, device=fix.device, t=fix.t, lat=fix.lat,
        lon=fix.lon, ele=fix.ele, acc=fix.acc, bat=fix.bat, sos=fix.sos, speed=rec.speed,
        heading=rec.heading, received=rec.received_ms, source=rec.source, raw=rec.raw))


def decode_ping(value: bytes) -> PingRecord:
    """Decode a ``pings.v1`` value. Raises RecordError naming what is wrong."""
    p = PINGS_CODEC.decode(value)
    return PingRecord(
        race=p.race, bib=p.bib,
        fix=Fix(device=p.device, t=p.t, lat=p.lat, lon=p.lon, ele=p.ele, acc=p.acc,
                bat=p.bat, sos=p.sos),
        received_ms=p.received, source=p.source, speed=p.speed, heading=p.heading,
        raw=p.raw)


def encode_chip_read(rec: ChipReadRecord) -> bytes:
    """The ``chip-reads.v1`` value of ``rec``."""
    read = rec.read
    return CHIP_READS_CODEC.encode(ChipReadV1(
        v=VERSION, race=rec.race, bib=read.bib, checkpoint=read.checkpoint, t=read.t,
        reader=read.reader, chip=rec.chip, received=rec.received_ms, source=rec.source,
        raw=rec.raw))


def decode_chip_read(value: bytes) -> ChipReadRecord:
    """Decode a ``chip-reads.v1`` value. Raises RecordError naming what is wrong."""
    c = CHIP_READS_CODEC.decode(value)
    return ChipReadRecord(
        race=c.race,
        read=ChipRead(bib=c.bib, checkpoint=c.checkpoint, t=c.t, reader=c.reader),
        received_ms=c.received, chip=c.chip, source=c.source, raw=c.raw)
