"""The OsmAnd protocol as Traccar Client speaks it: one fix per request, decoded purely.

Two shapes reach the OsmAnd port:

* a query string (``GET /?id=...&lat=...`` or a ``POST`` form body), the classic
  protocol: ``id``/``deviceid``, ``lat``+``lon`` or ``location=lat,lon``, ``timestamp``
  (unix seconds, unix milliseconds, ISO-8601 or ``yyyy-MM-dd HH:mm:ss`` UTC),
  ``altitude`` (m), ``speed`` (knots), ``bearing``/``heading`` (deg), ``accuracy`` (m),
  ``hdop``, ``batt`` (percent) and any extra key (``alarm=sos`` raises SOS);
* the JSON body of Traccar Client 9 and later: ``device_id``, ``location.timestamp``,
  ``location.coords.{latitude, longitude, accuracy, speed (m/s), heading, altitude}``,
  ``battery.level`` (0..1, top level or inside ``location``), ``alarm``.

Both give a :class:`DecodedFix` (units converted: speed in m/s, battery 0..1) and keep
the device's own fields in ``raw`` (never the ``key`` credential).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from race_engine.fixes import (
    BAD_ACC,
    BAD_BAT,
    BAD_ELE,
    BAD_LAT,
    BAD_LON,
    BAD_TIME,
    MAX_FUTURE_MS,
    NOT_AN_OBJECT,
    FixError,
    check_fix,
    parse_device,
    parse_iso_time,
)
from race_engine.model import Fix

KNOT_MS = 1852.0 / 3600.0
# Traccar's rule: a number below 2^31 is unix seconds, anything larger milliseconds.
SECONDS_LIMIT = 2**31 - 1
CREDENTIAL_PARAMS = frozenset({"key"})
BAD_SPEED = "bad_speed"
BAD_HEADING = "bad_heading"


@dataclass(frozen=True, slots=True)
class DecodedFix:
    """A fix with what the Fix value has no room for: speed (m/s), heading, raw fields."""

    fix: Fix
    speed: float | None = None
    heading: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def query_params(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The parameters of a query string or form, last value winning (as in Traccar)."""
    return {k: v for k, v in pairs}


def query_device(params: Mapping[str, str]) -> str | None:
    """The device id of an OsmAnd query (``id`` or ``deviceid``), None when absent."""
    value = params.get("id") or params.get("deviceid")
    return value.strip() if value and value.strip() else None


def decode_query(
    params: Mapping[str, str], *, now_ms: int, max_future_ms: int = MAX_FUTURE_MS
) -> DecodedFix:
    """Decode one OsmAnd query-string fix. A missing timestamp means ``now_ms``.

    Raises FixError naming the parameter that is wrong.
    """
    device = parse_device(query_device(params))
    if "location" in params:
        lat_text, _, lon_text = params["location"].partition(",")
        lat = _num(lat_text, "location", BAD_LAT)
        lon = _num(lon_text, "location", BAD_LON)
    else:
        lat = _num(params.get("lat"), "lat", BAD_LAT)
        lon = _num(params.get("lon"), "lon", BAD_LON)
    stamp = params.get("timestamp")
    t = now_ms if stamp is None else parse_osmand_time(stamp)
    speed_kn = _opt(params.get("speed"), "speed", BAD_SPEED)
    batt = _opt(params.get("batt"), "batt", BAD_BAT)
    fix = Fix(
        device=device, t=t, lat=lat, lon=lon,
        ele=_opt(params.get("altitude"), "altitude", BAD_ELE),
        acc=_opt(params.get("accuracy"), "accuracy", BAD_ACC),
        bat=_known(None if batt is None else batt / 100.0),
        sos=params.get("alarm", "").strip().lower() == "sos",
    )
    heading = _opt(params.get("bearing") or params.get("heading"), "bearing", BAD_HEADING)
    raw = {k: v for k, v in params.items() if k not in CREDENTIAL_PARAMS}
    return DecodedFix(
        fix=check_fix(fix, now_ms=now_ms, max_future_ms=max_future_ms),
        speed=_known(None if speed_kn is None else speed_kn * KNOT_MS),
        heading=_known(heading),
        raw=raw,
    )


def json_device(obj: object) -> str | None:
    """The ``device_id`` of a Traccar Client JSON body, None when absent."""
    if not isinstance(obj, Mapping):
        return None
    value = obj.get("device_id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value.strip() if isinstance(value, str) and value.strip() else None


def decode_json(
    obj: object, *, now_ms: int, max_future_ms: int = MAX_FUTURE_MS
) -> DecodedFix:
    """Decode the JSON body of Traccar Client 9+. Raises FixError naming the field."""
    if not isinstance(obj, Mapping):
        raise FixError(NOT_AN_OBJECT, "the body must be a JSON object with device_id, location")
    device = parse_device(json_device(obj))
    location = obj.get("location")
    if not isinstance(location, Mapping):
        raise FixError(BAD_LAT, "'location' must be an object with timestamp and coords")
    coords = location.get("coords")
    if not isinstance(coords, Mapping):
        raise FixError(BAD_LAT, "'location.coords' must be an object with latitude, longitude")
    stamp = location.get("timestamp")
    t = now_ms if stamp is None else _json_time(stamp)
    battery = obj.get("battery", location.get("battery"))
    level = _jnum(battery.get("level"), "battery.level", BAD_BAT, optional=True) \
        if isinstance(battery, Mapping) else None
    fix = Fix(
        device=device, t=t,
        lat=_required(_jnum(coords.get("latitude"), "coords.latitude", BAD_LAT)),
        lon=_required(_jnum(coords.get("longitude"), "coords.longitude", BAD_LON)),
        ele=_jnum(coords.get("altitude"), "coords.altitude", BAD_ELE, optional=True),
        acc=_known(_jnum(coords.get("accuracy"), "coords.accuracy", BAD_ACC, optional=True)),
        bat=_known(level),  # -1: the phone does not know
        sos=_alarm(obj, location) == "sos",
    )
    return DecodedFix(
        fix=check_fix(fix, now_ms=now_ms, max_future_ms=max_future_ms),
        speed=_known(_jnum(coords.get("speed"), "coords.speed", BAD_SPEED, optional=True)),
        heading=_known(
            _jnum(coords.get("heading"), "coords.heading", BAD_HEADING, optional=True)
        ),
        raw=dict(obj),
    )


def parse_osmand_time(text: str) -> int:
    """Epoch ms of an OsmAnd ``timestamp``: unix s or ms, ISO-8601, ``yyyy-MM-dd HH:mm:ss``."""
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if math.isfinite(number) and text.replace(".", "", 1).lstrip("-").isdigit():
        return round(number * 1000) if abs(number) < SECONDS_LIMIT else round(number)
    if "T" in text:
        return parse_iso_time(text, "timestamp")
    try:
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        raise FixError(
            BAD_TIME, f"timestamp {text[:40]!r} is not unix seconds, unix milliseconds, "
            "ISO-8601 or yyyy-MM-dd HH:mm:ss",
        ) from None
    return round(moment.timestamp() * 1000)


def _json_time(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FixError(BAD_TIME, "'location.timestamp' must be ISO-8601 or unix time")
    return parse_osmand_time(str(value))


def _alarm(obj: Mapping[str, Any], location: Mapping[str, Any]) -> str:
    extras = location.get("extras")
    for holder in (obj, location, extras if isinstance(extras, Mapping) else {}):
        value = holder.get("alarm")
        if isinstance(value, str):
            return value.strip().lower()
    return ""


def _num(text: str | None, name: str, reason: str) -> float:
    if text is None or not text.strip():
        raise FixError(reason, f"missing '{name}': give decimal degrees, e.g. lat=42.975")
    value = _opt(text, name, reason)
    assert value is not None
    return value


def _opt(text: str | None, name: str, reason: str) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise FixError(reason, f"'{name}' {text[:40]!r} is not a number") from None
    if not math.isfinite(value) or "_" in text:
        raise FixError(reason, f"'{name}' {text[:40]!r} is not a finite decimal number")
    return value


def _jnum(value: object, name: str, reason: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FixError(reason, f"'{name}' must be a number")
    return float(value)


def _required(value: float | None) -> float:
    assert value is not None  # _jnum without optional never returns None
    return value


def _known(value: float | None) -> float | None:
    """Traccar Client sends -1 for an unknown speed, heading, accuracy or battery."""
    return None if value is None or value < 0 else value
