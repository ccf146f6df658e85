"""Numbers rounded to what a person reads, before a frame is encoded (sans-I/O).

The records in Kafka keep full precision; a spectator's phone does not need 16 digits
of a gap or a distance. Rounding by field name, the names of docs/streams.md:

* ``lat``, ``lon``: 5 decimals (about 1 m);
* ``km``: 3 decimals (1 m);
* a name ending ``_m`` (``progress_m``): whole metres;
* a name ending ``_s`` (``elapsed_s``, ``gap_leader_s``, ``last_seen_s``): 0.1 s;
* ``track`` and ``points`` (``[elapsed_s, progress_m]`` pairs): 0.1 s and whole metres.

Other numbers (integers such as ``t_ms`` and ``seq``, and any float not named above)
are left as they are. Values are rebuilt, never changed in place: the views' state is
shared with the feed.
"""

from __future__ import annotations

from typing import Any


def _number(key: str, value: float) -> float | int:
    if key in ("lat", "lon"):
        return round(value, 5)
    if key == "km":
        return round(value, 3)
    if key.endswith("_m"):
        return round(value)
    if key.endswith("_s"):
        return round(value, 1)
    return value


def _points(points: list[Any]) -> list[Any]:
    return [[round(p[0], 1), round(p[1])] if isinstance(p, list) and len(p) == 2
            and all(isinstance(x, float | int) and not isinstance(x, bool) for x in p)
            else p for p in points]


def compact(value: Any, key: str = "") -> Any:
    """``value`` with its floats rounded by the name they are under."""
    if isinstance(value, dict):
        return {k: _points(v) if k in ("track", "points") and isinstance(v, list)
                else compact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [compact(v, key) for v in value]
    if isinstance(value, float):
        return _number(key, value)
    return value
