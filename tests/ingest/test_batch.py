"""Splitting a request body into items: JSON array, one object, JSON lines."""

from __future__ import annotations

import pytest

from ingest.batch import BatchError, Rejection, decode_fixes, split_items

NOW = 1_779_001_200_000


def test_array_object_and_lines() -> None:
    assert split_items(b' [{"a": 1}, 2] ', max_items=5) == [{"a": 1}, 2]
    assert split_items(b'{\n  "a": 1\n}\n', max_items=5) == [{"a": 1}]
    assert split_items(b'{"a": 1}\n\n{"b": 2}\r\n', max_items=5) == [{"a": 1}, {"b": 2}]


def test_a_bad_line_is_a_rejected_item_with_its_index() -> None:
    items = split_items(b'{"a": 1}\n{oops\n{"c": 3}', max_items=5)
    assert items[0] == {"a": 1} and items[2] == {"c": 3}
    assert isinstance(items[1], Rejection)
    assert (items[1].index, items[1].reason) == (1, "malformed_json")


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"", "empty_body"), (b"  \n", "empty_body"), (b"[1,", "malformed_json"),
     (b"42", "malformed_json"), (b"\xff\xfe", "malformed_json"),
     (b"[" + b",".join([b"{}"] * 6) + b"]", "too_many_items")],
)
def test_whole_body_errors(body: bytes, reason: str) -> None:
    with pytest.raises(BatchError) as info:
        split_items(body, max_items=5)
    assert info.value.reason == reason


def test_decode_fixes_keeps_raw_objects_and_indexes() -> None:
    body = (b'[{"device":"d","ts":1779001100000,"lat":1,"lon":2,"mine":true},'
            b'{"device":"d","ts":1779001100000,"lat":1}]')
    result = decode_fixes(body, max_items=5, now_ms=NOW)
    assert [a.index for a in result.accepted] == [0]
    assert result.accepted[0].raw["mine"] is True
    assert [(r.index, r.reason) for r in result.rejected] == [(1, "bad_lon")]
