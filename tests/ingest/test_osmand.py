"""OsmAnd decoding, fed the literal requests Traccar Client sends (query and JSON)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.osmand import (
    KNOT_MS,
    decode_json,
    decode_query,
    json_device,
    parse_osmand_time,
    query_device,
    query_params,
)
from race_engine.fixes import FixError

NOW = 1_779_001_200_000


def q(url: str) -> dict[str, str]:
    """The parameters of a request line, decoded as the HTTP server decodes them."""
    return query_params(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def test_iso_timestamp_hdop_altitude() -> None:
    d = decode_query(q("/?id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z"
                       "&hdop=6.0&altitude=224.0&speed=0.0"), now_ms=NOW)
    assert d.fix.device == "902064"
    assert (d.fix.lat, d.fix.lon, d.fix.ele) == (42.06288, -88.23412, 224.0)
    assert d.fix.t == 1_453_920_947_000
    assert d.speed == 0.0
    assert d.raw["hdop"] == "6.0"


def test_millisecond_timestamp() -> None:
    d = decode_query(q("/?id=902064&lat=42.06288&lon=-88.23412&timestamp=1442068686579"
                       "&hdop=6.0&altitude=224.0&speed=0.0"), now_ms=NOW)
    assert d.fix.t == 1_442_068_686_579


def test_space_separated_timestamp_is_utc() -> None:
    d = decode_query(q("/?lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11"
                       "&altitude=384.7&speed=0.0&id=353861053849681"), now_ms=NOW)
    assert d.fix.device == "353861053849681"
    assert d.fix.t == 1_401_873_011_000
    assert d.fix.ele == 384.7


def test_seconds_timestamp_and_bearing() -> None:
    d = decode_query(q("/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0&speed=0.0"
                       "&bearing=0.0&altitude=0&hdop=0.0"), now_ms=NOW)
    assert d.fix.t == 1_377_177_267_000
    assert (d.fix.lat, d.fix.lon, d.heading) == (60.0, 30.0, 0.0)


def test_deviceid_and_heading_without_timestamp_use_arrival_time() -> None:
    d = decode_query(q("/?lat=60.0&lon=30.0&speed=0.0&heading=0.0&vacc=0&hacc=0&altitude=0"
                       "&deviceid=123456"), now_ms=NOW)
    assert d.fix.device == "123456"
    assert d.fix.t == NOW
    assert d.raw["vacc"] == "0"


def test_battery_percent_becomes_a_fraction() -> None:
    d = decode_query(q("/?id=861001000719969&lat=41.666667&lon=-0.883333&altitude=350.059479"
                       "&speed=0.000000&batt=87"), now_ms=NOW)
    assert d.fix.bat == pytest.approx(0.87)


def test_location_pair() -> None:
    d = decode_query(q("/?id=123456&timestamp=1377177267&location=60.0,30.0"), now_ms=NOW)
    assert (d.fix.lat, d.fix.lon) == (60.0, 30.0)


def test_speed_in_knots_becomes_metres_per_second_and_extras_are_kept() -> None:
    d = decode_query(q("/?id=123456789012345&timestamp=1504763810&lat=40.7232948571"
                       "&lon=-74.0061408571&bearing=7.19889788244&speed=40&ignition=true"
                       "&rpm=933&fuel=24"), now_ms=NOW)
    assert d.speed == pytest.approx(40 * 0.514444, rel=1e-5)
    assert d.speed == pytest.approx(40 * KNOT_MS)
    assert d.heading == pytest.approx(7.19889788244)
    assert d.raw["ignition"] == "true" and d.raw["rpm"] == "933"


def test_alarm_sos_and_accuracy() -> None:
    d = decode_query(q("/?id=ZGM-0001&timestamp=1779001100&lat=42.95&lon=-2.33&accuracy=12.5"
                       "&alarm=sos&key=secret"), now_ms=NOW)
    assert d.fix.sos is True
    assert d.fix.acc == 12.5
    assert "key" not in d.raw  # the credential never reaches Kafka


def test_missing_id_is_no_device() -> None:
    assert query_device(q("/?timestamp=1377177267&lat=60.0&lon=30.0")) is None
    with pytest.raises(FixError) as info:
        decode_query(q("/?timestamp=1377177267&lat=60.0&lon=30.0"), now_ms=NOW)
    assert info.value.reason == "bad_device"


def test_cell_only_request_has_no_position() -> None:
    with pytest.raises(FixError) as info:
        decode_query(q("/?id=123456&timestamp=1377177267&cell=257,02,16,2224"), now_ms=NOW)
    assert info.value.reason == "bad_lat"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("/?id=1&lat=91&lon=0&timestamp=1377177267", "bad_lat"),
        ("/?id=1&lat=nan&lon=0&timestamp=1377177267", "bad_lat"),
        ("/?id=1&lat=1&lon=x&timestamp=1377177267", "bad_lon"),
        ("/?id=1&location=60.0&timestamp=1377177267", "bad_lon"),
        ("/?id=1&lat=1&lon=1&timestamp=yesterday", "bad_time"),
        ("/?id=1&lat=1&lon=1&timestamp=1779002000", "future_time"),
        ("/?id=1&lat=1&lon=1&timestamp=1377177267&speed=fast", "bad_speed"),
        ("/?id=1&lat=1&lon=1&timestamp=1377177267&batt=250", "bad_bat"),
    ],
)
def test_bad_parameters_are_named(url: str, reason: str) -> None:
    with pytest.raises(FixError) as info:
        decode_query(q(url), now_ms=NOW)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1377177267", 1_377_177_267_000),
        ("1442068686579", 1_442_068_686_579),
        ("1377177267.5", 1_377_177_267_500),
        ("2016-01-27T18:55:47Z", 1_453_920_947_000),
        ("2025-06-15T13:45:12.862Z", 1_749_995_112_862),
        ("2014-06-04 09:10:11", 1_401_873_011_000),
    ],
)
def test_timestamp_forms(text: str, ms: int) -> None:
    assert parse_osmand_time(text) == ms


ANDROID_JSON = (
    b'{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,'
    b'"longitude":-122.084,"accuracy":5,"speed":0,"heading":-1,"altitude":5},"is_moving":false,'
    b'"odometer":0,"event":"motionchange","battery":{"level":1,"is_charging":false},'
    b'"activity":{"type":"still"},"extras":{},"_":"&id=48241179&lat=37.4219983&lon=-122.084'
    b'&timestamp=2025-06-15T13:45:12.862Z&"},"device_id":"48241179"}'
)
IOS_JSON = (
    b'{"location":{"extras":{},"mock":true,"coords":{"speed_accuracy":-1,"speed":-1,'
    b'"longitude":-122.406417,"ellipsoidal_altitude":0,"floor":null,"heading_accuracy":-1,'
    b'"latitude":37.785834000000001,"accuracy":5,"altitude_accuracy":-1,"altitude":0,'
    b'"heading":-1},"is_moving":false,"age":188,"odometer":0,"uuid":"2FB04C65-99CF-42AB-8DD3-'
    b'EBCB4B108BF8","event":"motionchange","battery":{"level":-1,"is_charging":false},'
    b'"activity":{"type":"unknown","confidence":100},"timestamp":"2025-05-09T04:11:30.579Z"},'
    b'"device_id":"658765"}'
)
MOVING_JSON = (
    b'{"location":{"event":"motionchange","is_moving":false,"uuid":"0e9a2473-a9a7-4c00-997b-'
    b'fb97d2154e75","timestamp":"2021-07-21T08:06:34.444Z","odometer":0,"coords":{"latitude":'
    b'-6.1148096,"longitude":106.6837015,"accuracy":3.8,"speed":18.67,"speed_accuracy":0.26,'
    b'"heading":63,"heading_accuracy":0.28,"altitude":35.7,"altitude_accuracy":3.8},'
    b'"activity":{"type":"still","confidence":100},"battery":{"is_charging":false,'
    b'"level":0.79},"extras":{}},"device_id":"8737767034"}'
)


def test_traccar_client_json_android() -> None:
    obj = orjson.loads(ANDROID_JSON)
    assert json_device(obj) == "48241179"
    d = decode_json(obj, now_ms=NOW)
    assert d.fix.t == 1_749_995_112_862
    assert (d.fix.lat, d.fix.lon, d.fix.ele, d.fix.acc) == (37.4219983, -122.084, 5.0, 5.0)
    assert d.fix.bat == 1.0
    assert d.speed == 0.0
    assert d.heading is None  # -1: unknown
    assert d.raw["location"]["event"] == "motionchange"


def test_traccar_client_json_ios_unknowns_are_absent() -> None:
    d = decode_json(orjson.loads(IOS_JSON), now_ms=NOW)
    assert d.fix.device == "658765"
    assert d.fix.t == 1_746_763_890_579
    assert d.fix.lat == pytest.approx(37.785834)
    assert (d.fix.bat, d.speed, d.heading) == (None, None, None)


def test_traccar_client_json_speed_is_already_metres_per_second() -> None:
    d = decode_json(orjson.loads(MOVING_JSON), now_ms=NOW)
    assert d.speed == 18.67
    assert d.heading == 63.0
    assert d.fix.bat == 0.79
    assert d.fix.ele == 35.7


@pytest.mark.parametrize("where", ["root", "location", "extras"])
def test_json_alarm_sos_anywhere_traccar_puts_it(where: str) -> None:
    obj = orjson.loads(MOVING_JSON)
    holder = {"root": obj, "location": obj["location"], "extras": obj["location"]["extras"]}
    holder[where]["alarm"] = "sos"
    assert decode_json(obj, now_ms=NOW).fix.sos is True


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda o: o.pop("location"), "bad_lat"),
        (lambda o: o["location"].pop("coords"), "bad_lat"),
        (lambda o: o["location"]["coords"].update(latitude="37.4"), "bad_lat"),
        (lambda o: o["location"]["coords"].update(longitude=200), "bad_lon"),
        (lambda o: o["location"].update(timestamp="soon"), "bad_time"),
        (lambda o: o["location"].update(timestamp="2026-05-17T08:00:00Z"), "future_time"),
        (lambda o: o.update(device_id=""), "bad_device"),
    ],
)
def test_bad_json_fields_are_named(mutate: object, reason: str) -> None:
    obj = orjson.loads(MOVING_JSON)
    assert callable(mutate)
    mutate(obj)
    with pytest.raises(FixError) as info:
        decode_json(obj, now_ms=NOW)
    assert info.value.reason == reason


def test_json_that_is_not_an_object() -> None:
    assert json_device([1, 2]) is None
    with pytest.raises(FixError):
        decode_json([1, 2], now_ms=NOW)


@settings(max_examples=400, deadline=None)
@given(params=st.dictionaries(
    st.sampled_from(["id", "deviceid", "lat", "lon", "location", "timestamp", "speed", "bearing",
                     "altitude", "accuracy", "batt", "alarm"]),
    st.text(max_size=20) | st.sampled_from(["1", "42.9", "-2.3", "1,2", "1377177267", "nan",
                                            "1e400", "2016-01-27T18:55:47Z", "sos"])))
def test_query_decoding_only_raises_fix_error(params: dict[str, str]) -> None:
    try:
        decoded = decode_query(params, now_ms=NOW)
    except FixError as exc:
        assert exc.reason
        return
    assert -90 <= decoded.fix.lat <= 90
    assert decoded.speed is None or decoded.speed >= 0


@settings(max_examples=400, deadline=None)
@given(obj=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
        st.sampled_from(["device_id", "location", "coords", "latitude", "longitude",
                         "timestamp", "battery", "level", "alarm", "extras", "speed"]),
        kids, max_size=5),
    max_leaves=12))
def test_json_decoding_only_raises_fix_error(obj: object) -> None:
    try:
        decode_json(obj, now_ms=NOW)
    except FixError as exc:
        assert exc.reason
