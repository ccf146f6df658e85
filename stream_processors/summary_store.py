"""Runner summaries in the per-race stage's table, in parts, sans-I/O.

A summary's curve grows all race (a point per observation), so it is stored as a head
under ``race:bib`` (status, splits, latest fix, number of points) and chunks of
``CHUNK`` points under ``race:bib<SEP>k``; a write rewrites the head and only the chunks
from the first point that changed.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any

import orjson

from race_engine.model import Status
from race_engine.runner import Layout, Split
from race_engine.summary import RunnerSummary
from stream_processors.store import chunk_key

CHUNK = 256


def writes(key: bytes, s: RunnerSummary, changed_from: int) -> list[tuple[bytes, bytes]]:
    """``(table key, JSON value)`` that store ``s`` when its curve changed from point
    ``changed_from`` on (0: everything)."""
    n = len(s.curve_m)
    t0 = s.layout.start_ms
    out = []
    for k in range(min(changed_from, n) // CHUNK, (n + CHUNK - 1) // CHUNK):
        lo, hi = k * CHUNK, min(n, (k + 1) * CHUNK)
        out.append((chunk_key(key, k), orjson.dumps(
            {"m": s.curve_m[lo:hi].tolist(), "t": [x - t0 for x in s.curve_t[lo:hi]]})))
    out.append((key, orjson.dumps({
        "v": 1, "bib": s.bib, "status": s.status.value, "reason": s.reason,
        "last_t": s.last_t, "splits": [[x.checkpoint, x.t_ms, x.source, x.err_s]
                                       for x in s.raw_splits],
        "n": n})))
    return out


def read(head: dict[str, Any], key: bytes, layout: Layout,
         get: Callable[[bytes], dict[str, Any] | None]) -> RunnerSummary:
    """The summary stored under ``key`` with ``head``.

    Raises:
        ValueError: a malformed head, or a chunk it needs is missing.
    """
    try:
        n = int(head["n"])
        m: list[float] = []
        t: list[int] = []
        for k in range((n + CHUNK - 1) // CHUNK):
            chunk = get(chunk_key(key, k))
            if chunk is None:
                raise ValueError(f"chunk {k} is missing")
            m += chunk["m"]
            t += chunk["t"]
        if len(m) < n or len(t) < n:
            raise ValueError(f"the chunks hold {len(m)} points of {n}")
        return RunnerSummary(
            str(head["bib"]), layout, Status(head["status"]), str(head["reason"]),
            head["last_t"], tuple(Split(c, int(ts), src, *err)  # err_s: absent in old heads
                                  for c, ts, src, *err in head["splits"]),
            array("d", m[:n]), array("q", [x + layout.start_ms for x in t[:n]]))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"stored summary {key!r} is malformed: {e}") from None
