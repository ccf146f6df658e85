"""The device JSON format: decoding, validation and the round trip."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from race_engine.fixes import (
    MAX_FUTURE_MS,
    FixError,
    decode_fix,
    encode_fix,
    parse_iso_time,
    parse_time,
)
from race_engine.model import Fix

T0 = 1_779_001_200_000  # 2026-05-17T07:00:00Z


def test_full_fix_decodes_every_field() -> None:
    fix = decode_fix(
        {"device": "ZGM-0001", "ts": T0, "lat": 42.975, "lon": -2.29,
         "ele": 296, "acc": 8.5, "bat": 0.81, "sos": True}
    )
    assert fix == Fix("ZGM-0001", T0, 42.975, -2.29, 296.0, 8.5, 0.81, True)


def test_minimal_fix_leaves_optionals_unset() -> None:
    fix = decode_fix({"device": "ZGM-0002", "ts": T0, "lat": 42.9, "lon": -2.3})
    assert (fix.ele, fix.acc, fix.bat, fix.sos) == (None, None, None, False)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-05-17T07:00:00Z", T0),
        ("2026-05-17T07:00:00.250Z", T0 + 250),
        ("2026-05-17T09:00:00+02:00", T0),
        ("2026-05-17T07:00:00", T0),  # no offset: UTC
        (T0, T0),
        (float(T0) + 0.4, T0),
    ],
)
def test_times_in_every_accepted_form(ts: object, expected: int) -> None:
    assert decode_fix({"device": "d", "ts": ts, "lat": 1.0, "lon": 1.0}).t == expected


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"lat": 90.5}, "bad_lat"),
        ({"lat": "42.9"}, "bad_lat"),
        ({"lat": math.nan}, "bad_lat"),
        ({"lon": -180.01}, "bad_lon"),
        ({"lon": None}, "bad_lon"),
        ({"lat": 0, "lon": 0}, "no_position"),
        ({"device": ""}, "bad_device"),
        ({"device": 17}, "bad_device"),
        ({"device": "x" * 65}, "bad_device"),
        ({"ts": "yesterday"}, "bad_time"),
        ({"ts": True}, "bad_time"),
        ({"ts": 1_000}, "bad_time"),
        ({"ele": 12_000}, "bad_ele"),
        ({"acc": -1}, "bad_acc"),
        ({"bat": 81}, "bad_bat"),
        ({"sos": "yes"}, "bad_sos"),
    ],
)
def test_each_bad_field_is_named(patch: dict[str, object], reason: str) -> None:
    obj: dict[str, object] = {"device": "ZGM-0001", "ts": T0, "lat": 42.9, "lon": -2.3}
    obj.update(patch)
    with pytest.raises(FixError) as info:
        decode_fix(obj)
    assert info.value.reason == reason
    assert info.value.message


def test_missing_time_says_how_to_fix_it() -> None:
    with pytest.raises(FixError, match="epoch milliseconds") as info:
        decode_fix({"device": "d", "lat": 1.0, "lon": 1.0})
    assert info.value.reason == "bad_time"


@pytest.mark.parametrize("obj", [[], "fix", 3, None])
def test_non_objects_are_refused(obj: object) -> None:
    with pytest.raises(FixError) as info:
        decode_fix(obj)
    assert info.value.reason == "not_an_object"


def test_future_check_uses_the_given_clock_only() -> None:
    obj = {"device": "d", "ts": T0 + MAX_FUTURE_MS + 1, "lat": 1.0, "lon": 1.0}
    assert decode_fix(obj).t == T0 + MAX_FUTURE_MS + 1  # no clock: no future check
    with pytest.raises(FixError, match="in the future") as info:
        decode_fix(obj, now_ms=T0)
    assert info.value.reason == "future_time"
    assert decode_fix({**obj, "ts": T0 + MAX_FUTURE_MS}, now_ms=T0).t == T0 + MAX_FUTURE_MS


def test_encode_then_decode_is_the_identity() -> None:
    for fix in (
        Fix("ZGM-0001", T0, 42.975, -2.29),
        Fix("ZGM-0003", T0 + 1, -33.5, 151.2, ele=-3.0, acc=0.0, bat=1.0, sos=True),
    ):
        assert decode_fix(encode_fix(fix)) == fix


def test_encode_omits_unset_optionals() -> None:
    assert encode_fix(Fix("d", T0, 1.0, 2.0)) == {"device": "d", "ts": T0, "lat": 1.0, "lon": 2.0}


def test_parse_time_rejects_other_types() -> None:
    with pytest.raises(FixError):
        parse_time([T0])
    with pytest.raises(FixError):
        parse_time(math.inf)
    with pytest.raises(FixError, match="ISO-8601"):
        parse_iso_time("17/05/2026 07:00")


json_scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
                | st.sampled_from([T0, "2026-05-17T07:00:00Z", "9999-12-31T23:59:59+14:00"]))
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids,
                                                              max_size=3),
    max_leaves=8,
)
fix_like = st.fixed_dictionaries(
    {"device": json_scalars, "ts": json_scalars, "lat": json_scalars, "lon": json_scalars},
    optional={"ele": json_scalars, "acc": json_scalars, "bat": json_scalars,
              "sos": json_scalars},
)


@settings(max_examples=500, deadline=None)
@given(obj=fix_like | json_values, now=st.none() | st.integers(0, 2**62))
def test_decode_fix_returns_a_valid_fix_or_raises_fix_error(obj: object, now: int | None
                                                           ) -> None:
    try:
        fix = decode_fix(obj, now_ms=now)
    except FixError as exc:
        assert exc.reason and exc.message
        return
    assert -90 <= fix.lat <= 90 and -180 <= fix.lon <= 180
    assert now is None or fix.t <= now + MAX_FUTURE_MS
    assert decode_fix(encode_fix(fix)) == fix
