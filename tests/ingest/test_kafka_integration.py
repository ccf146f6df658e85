"""Through the real broker: what 202 acknowledged is in pings.v1, keyed, in order."""

from __future__ import annotations

import orjson
import pytest
from ingest_kafka import KEY, live_ingest, read_pings

pytestmark = pytest.mark.integration

T0 = 1_779_001_200_000


async def test_acknowledged_fixes_are_in_pings_keyed_and_in_order(kafka_bootstrap: str) -> None:
    devices = {"ZGM-0001": "101", "ZGM-0002": "102", "902064": "103"}
    sent: dict[str, list[int]] = {bib: [] for bib in devices.values()}
    async with live_ingest(kafka_bootstrap) as live:
        live.ingest.clock = lambda: T0 + 10_000_000
        for batch_no in range(10):
            batch = []
            for device, bib in devices.items():
                for i in range(5):
                    t = T0 + batch_no * 1000 + i
                    batch.append({"device": device, "ts": t, "lat": 42.9, "lon": -2.3})
                    sent[bib].append(t)
            resp = await live.api.post("/v1/pings", data=orjson.dumps(batch),
                                       headers={"Authorization": f"Bearer {KEY}"})
            assert resp.status == 202, await resp.text()
            assert (await resp.json())["accepted"] == 15
        resp = await live.osmand.get("/", params={"id": "902064", "lat": "42.9", "lon": "-2.3",
                                                  "timestamp": str(T0 + 99_000), "key": KEY})
        assert resp.status == 200
        sent["103"].append(T0 + 99_000)
        race = live.race
    records = await read_pings(kafka_bootstrap, race, expected=151)
    assert len(records) == 151
    got: dict[str, list[int]] = {bib: [] for bib in devices.values()}
    for key, rec in records:
        assert key == f"{race}:{rec.bib}".encode()
        got[rec.bib].append(rec.fix.t)
    assert got == sent  # every acknowledged fix, once, in the order sent per runner
    assert records[-1][1].source in {"batch", "osmand"}


async def test_healthz_is_ok_with_a_live_broker(kafka_bootstrap: str) -> None:
    async with live_ingest(kafka_bootstrap) as live:
        resp = await live.api.get("/healthz")
        assert resp.status == 200
        assert (await resp.json())["kafka"] == "up"
