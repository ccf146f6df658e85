"""Timing-mat reads: decode and validate one read, purely.

A read on the wire is a JSON object::

    {"bib": "101", "checkpoint": "sancti-spiritu", "ts": 1779007392000, "reader": "mat-3"}

``chip`` may replace ``bib`` (the chip id of the ``chip`` column of entrants.csv);
``ts`` is epoch milliseconds UTC or ISO-8601; ``reader`` is optional. Which bib a chip
belongs to, and whether bib and checkpoint exist, is the caller's business (it knows
the race); here only the shape and the time are checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from race_engine.fixes import (
    BAD_TIME,
    FUTURE_TIME,
    MAX_FUTURE_MS,
    MAX_TIME_MS,
    MIN_TIME_MS,
    NOT_AN_OBJECT,
    FixError,
    parse_time,
)

BAD_BIB = "bad_bib"
BAD_CHECKPOINT = "bad_checkpoint"
BAD_READER = "bad_reader"
UNKNOWN_BIB = "unknown_bib"
UNKNOWN_CHIP = "unknown_chip"
UNKNOWN_CHECKPOINT = "unknown_checkpoint"
MAX_ID_LEN = 64


@dataclass(frozen=True, slots=True)
class ChipReadInput:
    """A read as sent: by bib or by chip (exactly one is set), before resolution."""

    checkpoint: str
    t: int
    reader: str = ""
    bib: str | None = None
    chip: str | None = None


def decode_chip_read(
    obj: object, *, now_ms: int | None = None, max_future_ms: int = MAX_FUTURE_MS
) -> ChipReadInput:
    """Decode one chip read. Raises FixError naming the field that is wrong."""
    if not isinstance(obj, Mapping):
        raise FixError(NOT_AN_OBJECT, "a chip read must be a JSON object")
    bib = _id(obj.get("bib"), "bib", BAD_BIB, optional=True)
    chip = _id(obj.get("chip"), "chip", BAD_BIB, optional=True)
    if (bib is None) == (chip is None):
        raise FixError(BAD_BIB, "give exactly one of 'bib' or 'chip' to say whose read it is")
    checkpoint = _id(obj.get("checkpoint"), "checkpoint", BAD_CHECKPOINT)
    assert checkpoint is not None
    if "ts" not in obj:
        raise FixError(BAD_TIME, "missing 'ts': give epoch milliseconds UTC or ISO-8601")
    t = parse_time(obj["ts"], "ts")
    if not MIN_TIME_MS <= t <= MAX_TIME_MS:
        raise FixError(BAD_TIME, f"time {t} ms is not between years 2000 and 2100")
    if now_ms is not None and t > now_ms + max_future_ms:
        raise FixError(
            FUTURE_TIME,
            f"read time is {(t - now_ms) / 1000:.0f} s in the future: check the reader clock (UTC)",
        )
    reader = _id(obj.get("reader"), "reader", BAD_READER, optional=True) or ""
    return ChipReadInput(checkpoint=checkpoint, t=t, reader=reader, bib=bib, chip=chip)


def _id(value: object, name: str, reason: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # bibs are often written as numbers
    if not isinstance(value, str) or not value.strip():
        raise FixError(reason, f"'{name}' must be a non-empty string")
    if len(value) > MAX_ID_LEN or not value.isprintable():
        raise FixError(reason, f"'{name}' must be at most {MAX_ID_LEN} printable characters")
    return value.strip()
