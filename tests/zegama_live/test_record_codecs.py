"""Every topic's codec: the records the processors really publish round-trip through it,
and a record with a missing or wrong-typed field is refused naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from stage_fixtures import fed_race

from race_engine.racefolder import load_race
from stream_processors.commands import audit, check
from stream_processors.race_stage import RaceStage
from stream_processors.race_stage import Timing as RaceTiming
from stream_processors.runner_stage import Timing
from zegama_live.records import RecordError, to_builtins
from zegama_live.records.control import OPS, RACE_OPS, RUNNER_OPS, fields_of
from zegama_live.topics import BY_NAME, CONTROL, CONTROL_LOG, TOPICS, internal_topics

RACE_DIR = Path(__file__).resolve().parents[2] / "races" / "zegama-2026"


@pytest.fixture(scope="module")
def published() -> dict[str, list[bytes]]:
    """Every record the stages published over a short simulated race with incidents and
    race-control commands, encoded by its topic's codec."""
    race = load_race(RACE_DIR)
    fed = fed_race(race, runners=12, seed=5, incidents=True,
                   timing=Timing(card_ms=0, tick_ms=60_000))
    stage = RaceStage(race, RaceTiming(snapshot_ms=30 * 60_000))
    out: dict[str, list[bytes]] = {}
    records = list(fed.records)
    for n, s in enumerate(fed.summaries):
        stage.on_summary(s)
        if n % 50 == 0:
            records += stage.publish(race.start_ms + n * 1000)
    zone = race.danger_zones[0].id
    cmd = {"race": race.id, "op": "weather", "zone": zone, "on": True, "by": "t"}
    stage.on_audit(audit(cmd, *stage.on_command(cmd, fed.wall), fed.wall))
    records += stage.publish(fed.wall + 1000)
    for topic, _, value in records:
        out.setdefault(topic, []).append(BY_NAME[topic].codec.encode(value))
    board, settings = internal_topics("app")[1:3]
    out[board.name] = [board.codec.encode(s) for s in fed.batches]
    out[settings.name] = [settings.codec.encode(stage.settings(fed.wall))]
    return out


def roundtrip(topic: str, value: bytes) -> None:
    codec = BY_NAME[topic].codec if topic in BY_NAME else next(
        t.codec for t in internal_topics("app") if t.name == topic)
    assert orjson.loads(codec.encode(codec.decode(value))) == orjson.loads(value), topic


def test_every_output_record_round_trips_through_its_topics_codec(published) -> None:  # type: ignore[no-untyped-def]
    kinds = {topic: {orjson.loads(v).get("type", orjson.loads(v).get("action"))
                     for v in values} for topic, values in published.items()}
    assert {"snapshot", "update"} <= kinds["standings.v1"]
    assert {"raised"} <= kinds["alerts.v1"]
    assert published["runner-updates.v1"] and published["control-log.v1"]
    assert published["app-race-board"] and published["app-race-settings"]
    for topic, values in published.items():
        for value in values:
            roundtrip(topic, value)


@pytest.mark.parametrize("field", ["seq", "race"])
def test_an_output_record_missing_a_field_is_refused_naming_it(published, field) -> None:  # type: ignore[no-untyped-def]
    for topic in ("standings.v1", "runner-updates.v1", "alerts.v1"):
        rec = orjson.loads(published[topic][-1])
        del rec[field]
        with pytest.raises(RecordError, match=rf"{topic} record: .*'{field}'"):
            BY_NAME[topic].codec.decode(orjson.dumps(rec))


def test_a_wrong_typed_nested_field_is_named_by_its_path(published) -> None:  # type: ignore[no-untyped-def]
    rec = orjson.loads(published["alerts.v1"][-1])
    rec["alert"]["kind"] = "tired"
    with pytest.raises(RecordError, match=r"'tired' - at '\$\.alert\.kind'"):
        BY_NAME["alerts.v1"].codec.decode(orjson.dumps(rec))
    card = orjson.loads(published["runner-updates.v1"][-1])
    card["card"]["position"]["lat"] = "north"
    with pytest.raises(RecordError, match=r"\$\.card\.position\.lat"):
        BY_NAME["runner-updates.v1"].codec.decode(orjson.dumps(card))


def test_every_command_is_declared_once_and_checked_by_its_record() -> None:
    assert set(OPS) == RUNNER_OPS | RACE_OPS and not RUNNER_OPS & RACE_OPS
    examples: dict[str, dict[str, Any]] = {
        "dnf": {"bib": "7"}, "dns": {"bib": "7"}, "dsq": {"bib": "7"},
        "reinstate": {"bib": "7"}, "resolve_sos": {"bib": "7"},
        "manual_split": {"bib": "7", "checkpoint": "finish", "t_ms": 5},
        "ack": {"alert_id": "r:7:sos"}, "weather": {"zone": "z", "on": True},
        "reassign": {"device": "d", "bib": "7"}}
    assert set(examples) == set(OPS)
    codec = BY_NAME[CONTROL].codec
    for op, fields in examples.items():
        cmd = {"race": "r", "op": op, "id": "c-1", "by": "x", "at_ms": 1, **fields}
        assert check(cmd) is None
        assert to_builtins(codec.decode(orjson.dumps(cmd))) == cmd
        required, _ = fields_of(op)
        assert set(required) == set(fields)
        for name in required:
            missing = {k: v for k, v in cmd.items() if k != name}
            assert f"missing required field '{name}'" in str(check(missing))
    assert "Expected 'bool', got 'str' - at '$.on'" in str(check(
        {"race": "r", "op": "weather", "zone": "z", "on": "yes"}))
    assert "Invalid value 'fly'" in str(check({"race": "r", "op": "fly"}))


def test_every_topic_declares_a_codec_with_a_json_schema() -> None:
    for topic in (*TOPICS, *internal_topics("app")):
        schema = topic.codec.schema()
        assert "$defs" in schema or "type" in schema, topic.name
    log = BY_NAME[CONTROL_LOG].codec.schema()["$defs"]["AuditEntry"]
    assert log["properties"]["result"] == {"enum": ["applied", "rejected", "unchanged"]}


def test_the_cli_prints_a_topics_schema(capsys: pytest.CaptureFixture[str]) -> None:
    from zegama_live.cli import main

    assert main(["topics", "--schema", "alerts.v1"]) == 0
    schema = orjson.loads(capsys.readouterr().out)
    assert schema["$defs"]["Alert"]["properties"]["kind"]["enum"][0] == "cutoff_risk"


def test_the_pages_module_is_generated_from_the_records() -> None:
    from zegama_live.records.js import PAGES_MODULE, module_text

    assert PAGES_MODULE.read_text() == module_text(), \
        "broadcast/static/js/records.js is stale: run `zegama-live topics --js`"
    assert '"sos","stopped"' in module_text()


def test_the_feeds_openapi_document_takes_its_shapes_from_the_records() -> None:
    import copy
    import json

    from zegama_live.records.openapi import FEED_OPENAPI, feed_components, with_records

    doc = json.loads(FEED_OPENAPI.read_text())
    generated = feed_components()
    assert {"Board", "Row", "Card", "Eta", "Alert"} <= set(generated)
    for name, schema in generated.items():
        assert doc["components"]["schemas"][name] == schema, \
            f"docs/openapi/feed.json's {name} differs from the record: run " \
            "`zegama-live topics --openapi`"
    assert with_records(copy.deepcopy(doc)) == doc


def test_the_websocket_schema_document_is_generated_from_the_records() -> None:
    from zegama_live.records.websocket import WEBSOCKET_SCHEMA, schema

    doc = orjson.loads(WEBSOCKET_SCHEMA.read_bytes())
    assert doc == orjson.loads(orjson.dumps(schema())), \
        "docs/websocket.schema.json is stale: run `zegama-live topics --websocket`"
    assert {"requests", "messages", "standings update", "control snapshot"} <= \
        set(doc["properties"])


def test_a_websocket_frame_whose_data_does_not_fit_its_channel_is_refused() -> None:
    from zegama_live.records.websocket import REQUEST_CODEC, decode_frame

    flow = {"type": "update", "channel": "flow:zegama-2026", "seq": 9,
            "data": {"runners": {"7": {"name": "A", "status": "running", "from": 3,
                                       "points": [[60.0, 250.0]]}}}}
    assert decode_frame(orjson.dumps(flow)).seq == 9
    flow["data"]["runners"]["7"]["from"] = "3"
    with pytest.raises(RecordError, match=r"\$\.data\.runners\[\.\.\.\]\.from"):
        decode_frame(orjson.dumps(flow))
    # the documented empty forms before anything is published
    assert decode_frame(b'{"type":"snapshot","channel":"standings:r","seq":0,"data":{}}')
    with pytest.raises(RecordError, match="runners"):
        decode_frame(b'{"type":"snapshot","channel":"flow:r","seq":0,"data":{}}')
    with pytest.raises(RecordError, match="code"):
        decode_frame(b'{"type":"error","code":"oops","message":"m"}')
    with pytest.raises(RecordError, match="bib"):  # an ack's command is a control.v1 record
        decode_frame(orjson.dumps({"type": "ack", "id": "c-1", "command": {
            "v": 1, "race": "r", "id": "c-1", "op": "dnf", "by": "control:a", "at_ms": 1}}))
    sub = REQUEST_CODEC.decode(b'{"op":"subscribe","channel":"standings:r","top":10}')
    assert (sub.channel, sub.top, sub.since) == ("standings:r", 10, None)
