"""Request bodies decoded as their Content-Encoding says (ingest/encoding.py)."""

from __future__ import annotations

import gzip
import zlib

import pytest

from ingest.encoding import BodyError, decode_body

BODY = b'[{"device_id": "ZGM-0001", "lat": 43.0, "lon": -2.3}]'


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(("encoding", "raw"), [
    (None, BODY), ("identity", BODY), ("gzip", gzip.compress(BODY)),
    (" GZIP ", gzip.compress(BODY)), ("x-gzip", gzip.compress(BODY)),
    ("deflate", zlib.compress(BODY)), ("deflate", raw_deflate(BODY)),
])
def test_bodies_decode_as_their_encoding_says(encoding: str | None, raw: bytes) -> None:
    assert decode_body(raw, encoding, 1000) == BODY


@pytest.mark.parametrize(("encoding", "raw", "status", "reason"), [
    ("gzip", BODY, 400, "bad_content_encoding"),  # declared, not done
    ("deflate", BODY, 400, "bad_content_encoding"),
    ("gzip", gzip.compress(BODY)[:-12], 400, "bad_content_encoding"),  # cut short
    ("gzip", gzip.compress(BODY) + b"junk", 400, "bad_content_encoding"),
    ("br", BODY, 415, "unsupported_content_encoding"),
    (None, BODY * 40, 413, "payload_too_large"),
])
def test_a_body_that_cannot_be_read_is_refused_with_what_to_do(
        encoding: str | None, raw: bytes, status: int, reason: str) -> None:
    with pytest.raises(BodyError) as refused:
        decode_body(raw, encoding, 1000)
    assert (refused.value.status, refused.value.reason) == (status, reason)
    assert "send" in refused.value.message or "split" in refused.value.message


def test_a_bomb_is_stopped_at_the_limit_without_inflating_it_whole() -> None:
    bomb = gzip.compress(b" " * 50_000_000)  # 49 kB that inflate to 50 MB
    with pytest.raises(BodyError) as refused:
        decode_body(bomb, "gzip", 1_000_000)
    assert refused.value.status == 413
