"""``zegama-live ingest``: printing the config and tokens, and serving both ports."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest
from ingest_fakes import DATA

from ingest.auth import device_token
from ingest.cli import serve
from ingest.devices import DeviceRegistry
from ingest.settings import IngestSettings
from zegama_live.cli import main


def test_print_config_masks_secrets(capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEGAMA_INGEST_KEY", "very-secret")
    assert main(["ingest", "--print-config", "--race-dir", str(DATA), "--port", "9999"]) == 0
    out = capsys.readouterr().out
    config = json.loads(out)
    assert config["port"] == 9999 and config["ingest_key"] == "***" and config["race"] == "data"
    assert "very-secret" not in out


def test_missing_key_is_a_clear_exit(capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ZEGAMA_INGEST_KEY", "ZEGAMA_INGEST_DEVICE_SECRET", "ZEGAMA_INGEST_NO_AUTH"):
        monkeypatch.delenv(name, raising=False)
    assert main(["ingest", "--print-config"]) == 2
    assert "--no-auth" in capsys.readouterr().err


def test_print_device_tokens(capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEGAMA_INGEST_DEVICE_SECRET", "s3")
    assert main(["ingest", "--print-device-tokens", "--race-dir", str(DATA)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "device,bib,token"
    assert f"ZGM-0001,101,{device_token('s3', 'ZGM-0001')}" in lines
    assert len(lines) == 5  # bib 105 has no device


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
async def test_serve_answers_on_both_ports_and_stops(kafka_bootstrap: str) -> None:
    settings = IngestSettings(host="127.0.0.1", port=free_port(), osmand_port=free_port(),
                              race_dir=DATA, race_id="cli-test", kafka_bootstrap=kafka_bootstrap,
                              ingest_key="k")
    registry = DeviceRegistry(DATA)
    registry.reload()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, registry, stop))
    base = f"http://127.0.0.1:{settings.port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                async with http.get(base + "/healthz") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        async with http.post(base + "/v1/pings", headers={"Authorization": "Bearer k"},
                             json=[{"device": "ZGM-0001", "ts": "2026-05-17T07:00:00Z",
                                    "lat": 42.9, "lon": -2.3}]) as resp:
            assert resp.status == 202
        async with http.get(f"http://127.0.0.1:{settings.osmand_port}/?id=ZGM-0002&lat=42.9"
                            "&lon=-2.3&timestamp=1779001100&key=k") as resp:
            assert resp.status == 200
    stop.set()
    await asyncio.wait_for(server, 30)
    assert server.exception() is None
