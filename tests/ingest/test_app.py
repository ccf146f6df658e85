"""The HTTP APIs through aiohttp's test client, with a fake Kafka."""

from __future__ import annotations

import gzip

import orjson
from aiohttp.test_utils import TestClient
from ingest_fakes import ADMIN_KEY, DEVICE_SECRET, NOW_MS, RACE_KEY, FakeSink

from ingest.auth import device_token
from ingest.service import Ingest
from zegama_live.records import decode_chip_read, decode_ping
from zegama_live.topics import CHIP_READS, PINGS

AUTH = {"Authorization": f"Bearer {RACE_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def fix(device: str = "ZGM-0001", ts: object = NOW_MS - 60_000, **extra: object) -> dict:
    return {"device": device, "ts": ts, "lat": 42.95, "lon": -2.33, **extra}


async def test_batch_is_acknowledged_keyed_by_runner(api: TestClient, sink: FakeSink) -> None:
    body = orjson.dumps([fix(), fix("ZGM-0002", bat=0.5, note="kept"), fix(ts=NOW_MS)])
    resp = await api.post("/v1/pings", data=body, headers=AUTH)
    assert resp.status == 202
    assert await resp.json() == {"accepted": 3, "rejected": []}
    assert [(t, k) for t, k, _ in sink.sent] == [
        (PINGS, b"zegama-test:101"), (PINGS, b"zegama-test:102"), (PINGS, b"zegama-test:101")]
    rec = decode_ping(sink.sent[1][2])
    assert (rec.bib, rec.fix.device, rec.fix.bat, rec.source) == ("102", "ZGM-0002", 0.5, "batch")
    assert rec.raw["note"] == "kept" and rec.received_ms == NOW_MS


async def test_json_lines_with_a_bad_line(api: TestClient, sink: FakeSink) -> None:
    body = b"\n".join([orjson.dumps(fix()), b"{not json", orjson.dumps(fix(lat=95))]) + b"\n"
    resp = await api.post("/v1/pings", data=body, headers=AUTH)
    assert resp.status == 202
    answer = await resp.json()
    assert answer["accepted"] == 1
    assert [(r["index"], r["reason"]) for r in answer["rejected"]] == [
        (1, "malformed_json"), (2, "bad_lat")]
    assert len(sink.sent) == 1


async def test_each_fix_is_judged_on_its_own(api: TestClient, sink: FakeSink) -> None:
    body = orjson.dumps([fix("ZGM-9999"), fix(ts=NOW_MS + 3_600_000), fix(), "x"])
    resp = await api.post("/v1/pings", data=body, headers=AUTH)
    answer = await resp.json()
    assert resp.status == 202 and answer["accepted"] == 1
    reasons = {r["index"]: r["reason"] for r in answer["rejected"]}
    assert reasons == {0: "unknown_device", 1: "future_time", 3: "not_an_object"}
    assert "entrants.csv" in answer["rejected"][0]["message"]


async def test_all_rejected_is_422(api: TestClient, sink: FakeSink) -> None:
    resp = await api.post("/v1/pings", data=orjson.dumps([fix(lon=500)]), headers=AUTH)
    assert resp.status == 422
    assert (await resp.json())["rejected"][0]["reason"] == "bad_lon"
    assert sink.sent == []


async def test_missing_and_bad_keys(api: TestClient, sink: FakeSink) -> None:
    body = orjson.dumps([fix()])
    resp = await api.post("/v1/pings", data=body)
    assert resp.status == 401 and (await resp.json())["error"] == "missing_key"
    resp = await api.post("/v1/pings", data=body, headers={"Authorization": "Bearer nope"})
    assert resp.status == 401 and (await resp.json())["error"] == "bad_key"
    assert sink.sent == []


async def test_device_token_is_valid_for_its_own_device_only(api: TestClient,
                                                             sink: FakeSink) -> None:
    token = device_token(DEVICE_SECRET, "ZGM-0001")
    body = orjson.dumps([fix("ZGM-0001"), fix("ZGM-0002")])
    resp = await api.post("/v1/pings", data=body, headers={"Authorization": f"Bearer {token}"})
    answer = await resp.json()
    assert resp.status == 202 and answer["accepted"] == 1
    assert answer["rejected"][0] == {"index": 1, "reason": "not_your_device",
                                     "message": "the key does not allow device 'ZGM-0002'"}


async def test_malformed_and_oversized_bodies(api: TestClient, ingest: Ingest) -> None:
    for body, status, reason in [
        (b"[{]", 400, "malformed_json"),
        (b"hello", 400, "malformed_json"),
        (b"", 400, "empty_body"),
        (orjson.dumps([fix()] * 51), 413, "too_many_items"),
        (b"[" + b" " * 30_000 + b"]", 413, "payload_too_large"),
    ]:
        resp = await api.post("/v1/pings", data=body, headers=AUTH)
        assert resp.status == status, body[:20]
        assert (await resp.json())["error"] == reason
    metrics = ingest.metrics.render().decode()
    assert 'zegama_ingest_requests_rejected_total{api="pings",reason="malformed_json"} 2.0' \
        in metrics


async def test_kafka_down_is_503_with_retry_after(api: TestClient, sink: FakeSink) -> None:
    sink.fail = True
    resp = await api.post("/v1/pings", data=orjson.dumps([fix()]), headers=AUTH)
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "5"
    assert (await resp.json())["error"] == "kafka_unavailable"
    sink.fail = False
    resp = await api.post("/v1/pings", data=orjson.dumps([fix()]), headers=AUTH)
    assert resp.status == 202


async def test_healthz_follows_kafka(api: TestClient, sink: FakeSink) -> None:
    resp = await api.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["kafka"] == "up"
    sink.ready = False
    resp = await api.get("/healthz")
    body = await resp.json()
    assert resp.status == 503 and body["kafka"] == "down" and body["entrants"] == 5


async def test_metrics_count_by_source_and_reason(api: TestClient, osmand: TestClient) -> None:
    await api.post("/v1/pings", data=orjson.dumps([fix(), fix(lat=-91)]), headers=AUTH)
    await osmand.get("/", params={"id": "ZGM-0001", "lat": "42.9", "lon": "-2.3",
                                  "key": RACE_KEY})
    text = await (await api.get("/metrics")).text()
    assert 'zegama_ingest_fixes_accepted_total{source="batch"} 1.0' in text
    assert 'zegama_ingest_fixes_accepted_total{source="osmand"} 1.0' in text
    assert 'zegama_ingest_fixes_rejected_total{reason="bad_lat",source="batch"} 1.0' in text
    assert "zegama_ingest_kafka_ack_seconds_bucket" in text
    assert 'zegama_ingest_batch_size_count{api="pings"} 1.0' in text
    assert "zegama_ingest_requests_in_flight" in text


async def test_chip_reads_by_bib_and_chip(api: TestClient, sink: FakeSink) -> None:
    reads = [
        {"bib": "101", "checkpoint": "sancti-spiritu", "ts": NOW_MS - 5000, "reader": "mat-3"},
        {"chip": "E2002", "checkpoint": "finish", "ts": "2026-05-17T06:59:00Z"},
        {"bib": "999", "checkpoint": "finish", "ts": NOW_MS},
        {"chip": "NOPE", "checkpoint": "finish", "ts": NOW_MS},
        {"bib": 102, "checkpoint": "aizkorri", "ts": NOW_MS},
        {"checkpoint": "finish", "ts": NOW_MS},
    ]
    resp = await api.post("/v1/chip-reads", data=orjson.dumps(reads), headers=AUTH)
    answer = await resp.json()
    assert resp.status == 202 and answer["accepted"] == 2
    assert [r["reason"] for r in answer["rejected"]] == [
        "unknown_bib", "unknown_chip", "unknown_checkpoint", "bad_bib"]
    assert [(t, k) for t, k, _ in sink.sent] == [
        (CHIP_READS, b"zegama-test:101"), (CHIP_READS, b"zegama-test:102")]
    second = decode_chip_read(sink.sent[1][2])
    assert (second.read.bib, second.chip, second.read.t) == ("102", "E2002", NOW_MS - 60_000)


async def test_chip_reads_need_the_race_key(api: TestClient) -> None:
    token = device_token(DEVICE_SECRET, "ZGM-0001")
    body = orjson.dumps([{"bib": "101", "checkpoint": "finish", "ts": NOW_MS}])
    resp = await api.post("/v1/chip-reads", data=body, headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401


async def test_reassign_a_spare_tracker(api: TestClient, sink: FakeSink) -> None:
    body = orjson.dumps([fix("SPARE-07")])
    assert (await api.post("/v1/pings", data=body, headers=AUTH)).status == 422
    resp = await api.post("/v1/admin/reassign", json={"device": "SPARE-07", "bib": "103"},
                          headers=AUTH)
    assert resp.status == 401  # the ingest key is not the admin key
    resp = await api.post("/v1/admin/reassign", json={"device": "SPARE-07", "bib": "103"},
                          headers=ADMIN)
    assert resp.status == 200
    assert (await api.post("/v1/pings", data=body, headers=AUTH)).status == 202
    assert sink.sent[-1][1] == b"zegama-test:103"
    resp = await api.post("/v1/admin/reassign", json={"device": "SPARE-07", "bib": "777"},
                          headers=ADMIN)
    assert resp.status == 404 and "777" in (await resp.json())["message"]
    resp = await api.post("/v1/admin/reassign", data=b"[", headers=ADMIN)
    assert resp.status == 400


async def test_entrants_reload_by_admin_and_by_mtime(api: TestClient, ingest: Ingest) -> None:
    csv_file = ingest.settings.race_dir / "entrants.csv"
    csv_file.write_text(csv_file.read_text() + "106,New Runner,F,SEN,ES,ZGM-0106,,\n")
    resp = await api.post("/v1/admin/reload", headers=ADMIN)
    assert resp.status == 200 and (await resp.json())["entrants"] == 6
    csv_file.write_text("bib,name\n1,x\n")
    resp = await api.post("/v1/admin/reload", headers=ADMIN)
    assert resp.status == 422 and "previous entrants" in (await resp.json())["message"]
    assert ingest.registry.bib_of("ZGM-0106") == "106"  # the broken file changed nothing
    health = await (await api.get("/healthz")).json()
    assert "missing column" in health["entrants_error"]


async def test_gzip_bodies_and_the_limit_after_decompression(api: TestClient,
                                                             sink: FakeSink) -> None:
    gz = {**AUTH, "Content-Encoding": "gzip"}
    resp = await api.post("/v1/pings", data=gzip.compress(orjson.dumps([fix()])), headers=gz)
    assert resp.status == 202 and len(sink.sent) == 1
    bomb = gzip.compress(b"[" + b" " * 5_000_000 + b"]")  # 5 kB that inflate to 5 MB
    resp = await api.post("/v1/pings", data=bomb, headers=gz)
    assert resp.status == 413
    for encoding in ("gzip", "deflate"):  # declared, but not what the body is
        resp = await api.post("/v1/pings", data=orjson.dumps([fix()]),
                              headers={**AUTH, "Content-Encoding": encoding})
        body = await resp.json()
        assert resp.status == 400 and body["error"] == "bad_content_encoding", body
        assert encoding in body["message"] and "uncompressed" in body["message"]
    assert len(sink.sent) == 1  # nothing of the refused bodies went on
