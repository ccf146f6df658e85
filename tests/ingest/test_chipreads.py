"""Timing-mat reads: shape and time checks."""

from __future__ import annotations

import pytest

from ingest.chipreads import ChipReadInput, decode_chip_read
from race_engine.fixes import FixError

NOW = 1_779_001_200_000


def test_read_by_bib_and_by_chip() -> None:
    assert decode_chip_read({"bib": 101, "checkpoint": "finish", "ts": NOW, "reader": "m1"},
                            now_ms=NOW) == ChipReadInput("finish", NOW, "m1", bib="101")
    read = decode_chip_read({"chip": "E2001", "checkpoint": "otzaurte",
                             "ts": "2026-05-17T07:00:00Z"})
    assert (read.chip, read.bib, read.t, read.reader) == ("E2001", None, NOW, "")


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"checkpoint": "finish", "ts": NOW}, "bad_bib"),
        ({"bib": "1", "chip": "c", "checkpoint": "finish", "ts": NOW}, "bad_bib"),
        ({"bib": "1", "checkpoint": "", "ts": NOW}, "bad_checkpoint"),
        ({"bib": "1", "checkpoint": "finish"}, "bad_time"),
        ({"bib": "1", "checkpoint": "finish", "ts": 12}, "bad_time"),
        ({"bib": "1", "checkpoint": "finish", "ts": NOW + 600_000}, "future_time"),
        ({"bib": "1", "checkpoint": "finish", "ts": NOW, "reader": 3.5}, "bad_reader"),
        ([], "not_an_object"),
    ],
)
def test_bad_reads_are_named(obj: object, reason: str) -> None:
    with pytest.raises(FixError) as info:
        decode_chip_read(obj, now_ms=NOW)
    assert info.value.reason == reason
