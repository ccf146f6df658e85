"""The device JSON format: decode and validate one fix, and encode it back.

A fix on the wire is a JSON object::

    {"device": "ZGM-0001", "ts": 1779872400000, "lat": 42.975, "lon": -2.29,
     "ele": 296.0, "acc": 8.0, "bat": 0.81, "sos": false}

``ts`` is epoch milliseconds UTC or an ISO-8601 string; ``ele`` (metres), ``acc``
(metres), ``bat`` (0..1) and ``sos`` are optional. Decoding is pure: the caller passes
the current time when it wants fixes from the future refused (ingest does, replay of a
recorded file does not).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime

from race_engine.model import Fix

# Fixes more than this far ahead of the receiver's clock are refused: a phone with a
# wrong clock would otherwise put a runner ahead of the leaders.
MAX_FUTURE_MS = 5 * 60_000
# Plausible fix times: nothing before 2000 or after 2100 is a real GNSS time, and
# bounding the range keeps timestamp arithmetic away from overflow.
MIN_TIME_MS = 946_684_800_000
MAX_TIME_MS = 4_102_444_800_000
MAX_DEVICE_LEN = 64
MIN_ELE_M = -500.0
MAX_ELE_M = 9_000.0
MAX_ACC_M = 100_000.0

# Reason codes of FixError: stable strings, used as metric labels and in API answers.
NOT_AN_OBJECT = "not_an_object"
BAD_DEVICE = "bad_device"
BAD_TIME = "bad_time"
FUTURE_TIME = "future_time"
BAD_LAT = "bad_lat"
BAD_LON = "bad_lon"
NO_POSITION = "no_position"
BAD_ELE = "bad_ele"
BAD_ACC = "bad_acc"
BAD_BAT = "bad_bat"
BAD_SOS = "bad_sos"


class FixError(ValueError):
    """A fix that cannot be accepted: ``reason`` is a stable code, ``message`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def decode_fix(
    obj: object, *, now_ms: int | None = None, max_future_ms: int = MAX_FUTURE_MS
) -> Fix:
    """Decode one fix in the device JSON format.

    ``now_ms`` (epoch ms) enables the future check: a fix more than ``max_future_ms``
    ahead of it is refused. Unknown keys are ignored (the caller keeps the raw object).
    Raises FixError naming the first field that is wrong.
    """
    if not isinstance(obj, Mapping):
        raise FixError(NOT_AN_OBJECT, f"a fix must be a JSON object, got {_kind(obj)}")
    device = parse_device(obj.get("device"))
    if "ts" not in obj:
        raise FixError(BAD_TIME, "missing 'ts': give epoch milliseconds UTC or ISO-8601")
    fix = Fix(
        device=device,
        t=parse_time(obj["ts"], "ts"),
        lat=_number(obj.get("lat"), "lat", BAD_LAT),
        lon=_number(obj.get("lon"), "lon", BAD_LON),
        ele=_optional(obj.get("ele"), "ele", BAD_ELE),
        acc=_optional(obj.get("acc"), "acc", BAD_ACC),
        bat=_optional(obj.get("bat"), "bat", BAD_BAT),
        sos=_sos(obj.get("sos", False)),
    )
    return check_fix(fix, now_ms=now_ms, max_future_ms=max_future_ms)


def check_fix(fix: Fix, *, now_ms: int | None = None, max_future_ms: int = MAX_FUTURE_MS) -> Fix:
    """Return ``fix`` unchanged if every field is in range; raise FixError otherwise.

    Shared by every decoder (device JSON, OsmAnd) so all sources obey the same rules.
    """
    if not -90.0 <= fix.lat <= 90.0:
        raise FixError(BAD_LAT, f"lat {fix.lat} is out of range: it must be within -90..90")
    if not -180.0 <= fix.lon <= 180.0:
        raise FixError(BAD_LON, f"lon {fix.lon} is out of range: it must be within -180..180")
    if fix.lat == 0.0 and fix.lon == 0.0:
        raise FixError(NO_POSITION, "lat 0, lon 0 is a device without a satellite fix")
    if not MIN_TIME_MS <= fix.t <= MAX_TIME_MS:
        raise FixError(BAD_TIME, f"time {fix.t} ms is not between years 2000 and 2100")
    if now_ms is not None and fix.t > now_ms + max_future_ms:
        ahead_s = (fix.t - now_ms) / 1000.0
        raise FixError(
            FUTURE_TIME,
            f"fix time is {ahead_s:.0f} s in the future (limit {max_future_ms // 1000} s): "
            "check the device clock and that times are UTC",
        )
    if fix.ele is not None and not MIN_ELE_M <= fix.ele <= MAX_ELE_M:
        raise FixError(BAD_ELE, f"ele {fix.ele} m is not a plausible elevation")
    if fix.acc is not None and not 0.0 <= fix.acc <= MAX_ACC_M:
        raise FixError(BAD_ACC, f"acc {fix.acc} m must be a non-negative accuracy in metres")
    if fix.bat is not None and not 0.0 <= fix.bat <= 1.0:
        raise FixError(BAD_BAT, f"bat {fix.bat} must be a battery level within 0..1")
    return fix


def encode_fix(fix: Fix) -> dict[str, object]:
    """The device JSON object of ``fix``; optional fields appear only when set."""
    out: dict[str, object] = {"device": fix.device, "ts": fix.t, "lat": fix.lat, "lon": fix.lon}
    if fix.ele is not None:
        out["ele"] = fix.ele
    if fix.acc is not None:
        out["acc"] = fix.acc
    if fix.bat is not None:
        out["bat"] = fix.bat
    if fix.sos:
        out["sos"] = True
    return out


def parse_device(value: object) -> str:
    """A device id: a non-empty string of at most 64 printable characters."""
    if not isinstance(value, str) or not value.strip():
        raise FixError(BAD_DEVICE, "missing 'device': give the tracker id, e.g. \"ZGM-0001\"")
    if len(value) > MAX_DEVICE_LEN or not value.isprintable():
        raise FixError(
            BAD_DEVICE, f"device id must be at most {MAX_DEVICE_LEN} printable characters"
        )
    return value.strip()


def parse_time(value: object, name: str = "ts") -> int:
    """Epoch milliseconds UTC from a number of milliseconds or an ISO-8601 string.

    An ISO-8601 time without an offset is taken as UTC. Raises FixError (BAD_TIME).
    """
    if isinstance(value, bool):
        raise FixError(BAD_TIME, f"'{name}' must be epoch milliseconds or ISO-8601, not a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FixError(BAD_TIME, f"'{name}' must be a finite number of milliseconds")
        return round(value)
    if isinstance(value, str):
        return parse_iso_time(value, name)
    raise FixError(BAD_TIME, f"'{name}' must be epoch milliseconds or ISO-8601, got {_kind(value)}")


def parse_iso_time(text: str, name: str = "ts") -> int:
    """Epoch milliseconds of an ISO-8601 date-time; naive times are UTC. Raises FixError."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise FixError(
            BAD_TIME, f"'{name}' {text[:40]!r} is not ISO-8601, e.g. 2026-05-17T07:12:03Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return round(moment.timestamp() * 1000)
    except (OverflowError, OSError, ValueError):
        raise FixError(BAD_TIME, f"'{name}' {text[:40]!r} is out of range") from None


def _number(value: object, name: str, reason: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FixError(reason, f"'{name}' must be a number in decimal degrees, got {_kind(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise FixError(reason, f"'{name}' must be a finite number")
    return number


def _optional(value: object, name: str, reason: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FixError(reason, f"'{name}' must be a number or absent, got {_kind(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise FixError(reason, f"'{name}' must be a finite number or absent")
    return number


def _sos(value: object) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise FixError(BAD_SOS, f"'sos' must be true or false, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
