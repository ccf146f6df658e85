"""pings.v1 and chip-reads.v1 records: round trips and refusals."""

from __future__ import annotations

import orjson
import pytest

from race_engine.model import ChipRead, Fix
from zegama_live.records import (
    ChipReadRecord,
    PingRecord,
    RecordError,
    decode_chip_read,
    decode_ping,
    encode_chip_read,
    encode_ping,
)

T = 1_779_001_200_000


def test_ping_round_trip_and_shape() -> None:
    rec = PingRecord("zegama-2026", "101", Fix("ZGM-0001", T, 42.9, -2.3, 296.0, None, 0.8, True),
                     T + 5, "osmand", speed=2.5, heading=180.0, raw={"id": "ZGM-0001"})
    value = encode_ping(rec)
    assert decode_ping(value) == rec
    obj = orjson.loads(value)
    assert obj["v"] == 1 and obj["t"] == T and obj["acc"] is None and obj["received"] == T + 5


def test_chip_read_round_trip() -> None:
    rec = ChipReadRecord("zegama-2026", ChipRead("101", "finish", T, "mat-1"), T + 1, "E1",
                         raw={"chip": "E1"})
    assert decode_chip_read(encode_chip_read(rec)) == rec


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (b"nope", "not JSON"),
        (b"[]", "object"),
        (b'{"v": 2}', r"pings\.v1 record: .*2 - at '\$\.v'"),
        (b'{"v": 1, "race": "r"}', "missing required field 'bib'"),
    ],
)
def test_bad_ping_records(value: bytes, match: str) -> None:
    with pytest.raises(RecordError, match=match):
        decode_ping(value)


def test_wrong_types_are_named() -> None:
    obj = orjson.loads(encode_ping(PingRecord("r", "1", Fix("d", T, 1.0, 2.0), T, "batch")))
    obj["t"] = "soon"
    with pytest.raises(RecordError, match=r"Expected 'int', got 'str' - at '\$\.t'"):
        decode_ping(orjson.dumps(obj))
    chip = orjson.loads(encode_chip_read(ChipReadRecord("r", ChipRead("1", "c", T), T)))
    chip["chip"] = 5
    with pytest.raises(RecordError, match=r"\$\.chip"):
        decode_chip_read(orjson.dumps(chip))
