"""The OsmAnd port answers as Traccar does, for the literal requests of Traccar Client."""

from __future__ import annotations

from base64 import b64encode

from aiohttp.test_utils import TestClient
from ingest_fakes import DEVICE_SECRET, NOW_MS, RACE_KEY, FakeSink

from ingest.auth import device_token
from zegama_live.records import decode_ping
from zegama_live.topics import PINGS

ANDROID_JSON = (
    b'{"location":{"timestamp":"2026-05-17T06:58:12.862Z","coords":{"latitude":42.9514,'
    b'"longitude":-2.3258,"accuracy":5,"speed":3.2,"heading":181,"altitude":1528},'
    b'"is_moving":true,"odometer":0,"event":"motionchange","battery":{"level":0.64,'
    b'"is_charging":false},"activity":{"type":"on_foot"},"extras":{}},"device_id":"48241179"}'
)


async def test_query_get_is_200_with_empty_body(osmand: TestClient, sink: FakeSink) -> None:
    resp = await osmand.get(f"/?id=902064&lat=42.06288&lon=-2.23412&timestamp=2016-01-27T18"
                            f"%3A55%3A47Z&hdop=6.0&altitude=224.0&speed=1.0&key={RACE_KEY}")
    assert resp.status == 200
    assert await resp.read() == b""
    topic, key, value = sink.sent[0]
    rec = decode_ping(value)
    assert (topic, key, rec.source) == (PINGS, b"zegama-test:103", "osmand")
    assert rec.fix.t == 1_453_920_947_000 and rec.speed == 1852.0 / 3600.0
    assert rec.raw == {"id": "902064", "lat": "42.06288", "lon": "-2.23412",
                       "timestamp": "2016-01-27T18:55:47Z", "hdop": "6.0",
                       "altitude": "224.0", "speed": "1.0"}


async def test_post_with_query_string_and_empty_body(osmand: TestClient, sink: FakeSink) -> None:
    resp = await osmand.post(f"/?id=ZGM-0001&timestamp=1779001100&lat=42.95&lon=-2.33"
                             f"&batt=55&alarm=sos&key={RACE_KEY}")
    assert resp.status == 200
    rec = decode_ping(sink.sent[0][2])
    assert rec.fix.sos is True and rec.fix.bat == 0.55 and rec.fix.t == 1_779_001_100_000


async def test_post_form_body(osmand: TestClient, sink: FakeSink) -> None:
    token = device_token(DEVICE_SECRET, "ZGM-0002")
    resp = await osmand.post("/", data=f"id=ZGM-0002&lat=42.9&lon=-2.3&timestamp=1779001100000"
                                       f"&key={token}",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 200
    assert sink.sent[0][1] == b"zegama-test:102"


async def test_traccar_client_json(osmand: TestClient, sink: FakeSink) -> None:
    resp = await osmand.post(f"/?key={RACE_KEY}", data=ANDROID_JSON,
                             headers={"Content-Type": "application/json"})
    assert resp.status == 200
    rec = decode_ping(sink.sent[0][2])
    assert (rec.bib, rec.source, rec.speed, rec.heading) == ("104", "osmand-json", 3.2, 181.0)
    assert (rec.fix.lat, rec.fix.ele, rec.fix.bat) == (42.9514, 1528.0, 0.64)
    assert rec.fix.t == NOW_MS - 107_138


async def test_unknown_device_is_400_for_query_and_404_for_json(osmand: TestClient,
                                                                sink: FakeSink) -> None:
    resp = await osmand.get(f"/?id=123456&lat=60.0&lon=30.0&key={RACE_KEY}")
    assert resp.status == 400
    assert "123456" in await resp.text()
    resp = await osmand.post(f"/?key={RACE_KEY}", data=ANDROID_JSON.replace(b"48241179", b"1"),
                             headers={"Content-Type": "application/json"})
    assert resp.status == 404
    assert sink.sent == []


async def test_missing_id_and_bad_values(osmand: TestClient) -> None:
    assert (await osmand.get(f"/?timestamp=1377177267&lat=60.0&lon=30.0&key={RACE_KEY}")
            ).status == 400
    resp = await osmand.get(f"/?id=ZGM-0001&lat=95&lon=30.0&key={RACE_KEY}")
    assert resp.status == 400 and "lat 95.0 is out of range" in await resp.text()
    resp = await osmand.post("/", data=b"{oops", headers={"Content-Type": "application/json"})
    assert resp.status == 400


async def test_keys_by_query_basic_and_bearer(osmand: TestClient, sink: FakeSink) -> None:
    url = "/?id=ZGM-0001&lat=42.9&lon=-2.3"
    assert (await osmand.get(url)).status == 401
    assert (await osmand.get(url + "&key=wrong")).status == 401
    token = device_token(DEVICE_SECRET, "ZGM-0002")  # another device's token
    assert (await osmand.get(url + f"&key={token}")).status == 401
    basic = {"Authorization": "Basic " + b64encode(f"ZGM-0001:{RACE_KEY}".encode()).decode()}
    assert (await osmand.get(url, headers=basic)).status == 200
    bearer = {"Authorization": f"Bearer {device_token(DEVICE_SECRET, 'ZGM-0001')}"}
    assert (await osmand.get(url, headers=bearer)).status == 200
    assert len(sink.sent) == 2


async def test_any_path_is_the_osmand_endpoint(osmand: TestClient) -> None:
    resp = await osmand.get(f"/some/path?id=ZGM-0001&lat=42.9&lon=-2.3&key={RACE_KEY}")
    assert resp.status == 200


async def test_kafka_down_is_503_with_retry_after(osmand: TestClient, sink: FakeSink) -> None:
    sink.fail = True
    resp = await osmand.get(f"/?id=ZGM-0001&lat=42.9&lon=-2.3&key={RACE_KEY}")
    assert resp.status == 503 and resp.headers["Retry-After"] == "5"


async def test_oversized_body_is_413(osmand: TestClient) -> None:
    resp = await osmand.post(f"/?key={RACE_KEY}", data=b"{" + b" " * 70_000 + b"}",
                             headers={"Content-Type": "application/json"})
    assert resp.status == 413


async def test_a_body_that_is_not_its_content_encoding_is_400(osmand: TestClient,
                                                              sink: FakeSink) -> None:
    resp = await osmand.post(f"/?key={RACE_KEY}", data=b'{"location": {}}',
                             headers={"Content-Type": "application/json",
                                      "Content-Encoding": "gzip"})
    assert resp.status == 400 and "Content-Encoding" in await resp.text()
    assert not sink.sent


async def test_report_without_position_is_dropped_with_200(osmand: TestClient,
                                                           sink: FakeSink) -> None:
    resp = await osmand.get(f"/?id=ZGM-0001&lat=0.0&lon=0.0&timestamp=1779001100&key={RACE_KEY}")
    assert resp.status == 200  # as Traccar: a refusal would wedge the client's queue
    assert "not stored" in await resp.text() or "satellite" in await resp.text()
    assert sink.sent == []
