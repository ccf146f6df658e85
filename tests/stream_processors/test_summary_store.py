"""Runner summaries stored in parts: a write rewrites the head and the changed chunks."""

from __future__ import annotations

import orjson
from stage_fixtures import board_of, fed_race, zegama

from stream_processors import summary_store
from stream_processors.summary_store import CHUNK


def test_a_stored_summary_reads_back_equal_and_writes_only_changed_chunks() -> None:
    race = zegama()
    fed = fed_race(race, runners=3)
    stage = board_of(race, fed.summaries)
    s = max(stage.summaries.values(), key=lambda x: len(x.curve_m))
    assert len(s.curve_m) > 2 * CHUNK
    key = f"{race.id}:{s.bib}".encode()
    table = dict(summary_store.writes(key, s, 0))
    assert len(table) == 1 + (len(s.curve_m) + CHUNK - 1) // CHUNK
    back = summary_store.read(orjson.loads(table[key]), key, stage.layout,
                              lambda k: orjson.loads(table[k]) if k in table else None)
    assert back == s
    late = summary_store.writes(key, s, len(s.curve_m) - 1)
    assert len(late) == 2  # the last chunk and the head


def test_a_missing_chunk_is_named() -> None:
    race = zegama()
    fed = fed_race(race, runners=1)
    stage = board_of(race, fed.summaries)
    s = max(stage.summaries.values(), key=lambda x: len(x.curve_m))
    key = f"{race.id}:{s.bib}".encode()
    table = dict(summary_store.writes(key, s, 0))
    import pytest

    with pytest.raises(ValueError, match="chunk 0 is missing"):
        summary_store.read(orjson.loads(table[key]), key, stage.layout, lambda k: None)


def test_a_head_stored_before_split_errors_reads_with_none() -> None:
    race = zegama()
    fed = fed_race(race, runners=1)
    stage = board_of(race, fed.summaries)
    s = next(iter(stage.summaries.values()))
    assert any(x.err_s for x in s.raw_splits)  # GPS splits carry their error estimate
    key = f"{race.id}:{s.bib}".encode()
    table = dict(summary_store.writes(key, s, 0))
    head = orjson.loads(table[key])
    head["splits"] = [x[:3] for x in head["splits"]]
    back = summary_store.read(head, key, stage.layout,
                              lambda k: orjson.loads(table[k]) if k in table else None)
    assert [x.t_ms for x in back.raw_splits] == [x.t_ms for x in s.raw_splits]
    assert all(x.err_s is None for x in back.raw_splits)
