"""Batches of items in one request body: a JSON array or JSON lines, decoded purely.

The batch is split first (a body that is not JSON at all is refused as a whole), then
every item is decoded on its own: one bad fix never costs the good ones beside it. In
JSON lines, a line that is not JSON is a rejected item, not a rejected batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson

from race_engine.fixes import MAX_FUTURE_MS, FixError, decode_fix
from race_engine.model import Fix

T = TypeVar("T")

MALFORMED_JSON = "malformed_json"
EMPTY_BODY = "empty_body"
TOO_MANY = "too_many_items"


class BatchError(ValueError):
    """A whole body that cannot be read as a batch; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused item: its 0-based index in the batch, a reason code and why."""

    index: int
    reason: str
    message: str

    def as_json(self) -> dict[str, object]:
        return {"index": self.index, "reason": self.reason, "message": self.message}


@dataclass(frozen=True, slots=True)
class Accepted(Generic[T]):
    """One decoded item with its index and the object the sender wrote."""

    index: int
    value: T
    raw: dict[str, Any]


@dataclass(frozen=True)
class BatchResult(Generic[T]):
    accepted: list[Accepted[T]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def split_items(body: bytes, *, max_items: int) -> list[object]:
    """The items of a JSON array, a single JSON object, or JSON lines.

    A JSON-lines line that does not parse becomes a Rejection in the list.
    Raises BatchError for an empty body, a body that is not JSON, or too many items.
    """
    text = body.strip()
    if not text:
        raise BatchError(EMPTY_BODY, "the body is empty: send a JSON array of fixes or JSON lines")
    items: list[object]
    if text[:1] == b"[":
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise BatchError(MALFORMED_JSON, f"the body is not valid JSON: {exc}") from None
        items = list(parsed)
    elif text[:1] == b"{":
        items = _json_lines(text)
    else:
        raise BatchError(
            MALFORMED_JSON, "the body must be a JSON array of objects or JSON lines (one per line)"
        )
    if len(items) > max_items:
        raise BatchError(
            TOO_MANY, f"{len(items)} items in one request; send at most {max_items} per request"
        )
    return items


def _json_lines(text: bytes) -> list[object]:
    try:  # one object, possibly pretty-printed over several lines
        return [orjson.loads(text)]
    except orjson.JSONDecodeError:
        pass
    items: list[object] = []
    for line in text.split(b"\n"):
        if not line.strip():
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            items.append(Rejection(len(items), MALFORMED_JSON, f"line is not valid JSON: {exc}"))
    return items


def decode_items(items: list[object], decode: Callable[[object], T]) -> BatchResult[T]:
    """Decode each item with ``decode`` (which raises FixError); collect both outcomes."""
    result: BatchResult[T] = BatchResult()
    for index, item in enumerate(items):
        if isinstance(item, Rejection):
            result.rejected.append(item)
            continue
        try:
            value = decode(item)
        except FixError as exc:
            result.rejected.append(Rejection(index, exc.reason, exc.message))
            continue
        raw = item if isinstance(item, dict) else {}
        result.accepted.append(Accepted(index, value, raw))
    return result


def decode_fixes(
    body: bytes, *, max_items: int, now_ms: int, max_future_ms: int = MAX_FUTURE_MS
) -> BatchResult[Fix]:
    """Decode a batch of fixes in the device JSON format. Raises BatchError (whole body)."""
    items = split_items(body, max_items=max_items)
    return decode_items(
        items, lambda obj: decode_fix(obj, now_ms=now_ms, max_future_ms=max_future_ms)
    )
