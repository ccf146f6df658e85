"""Settings: flag over environment over default, secrets never shown."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ingest.settings import IngestSettings, SettingsError, add_arguments, load


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_need_a_key() -> None:
    with pytest.raises(SettingsError, match="ZEGAMA_INGEST_KEY"):
        load(parse(), {})
    s = load(parse("--no-auth"), {})
    assert (s.port, s.osmand_port, s.kafka_bootstrap) == (8081, 5055, "127.0.0.1:9092")
    assert s.race == "zegama-2026"


def test_flag_beats_environment_beats_default() -> None:
    env = {"ZEGAMA_INGEST_PORT": "9000", "ZEGAMA_INGEST_OSMAND_PORT": "6000",
           "ZEGAMA_INGEST_KEY": "k", "ZEGAMA_KAFKA_BOOTSTRAP": "kafka:9092"}
    s = load(parse("--port", "9100"), env)
    assert (s.port, s.osmand_port, s.kafka_bootstrap, s.ingest_key) == (
        9100, 6000, "kafka:9092", "k")


def test_bad_values_name_flag_or_variable() -> None:
    with pytest.raises(SettingsError, match="ZEGAMA_INGEST_MAX_BATCH='many'"):
        load(parse(), {"ZEGAMA_INGEST_KEY": "k", "ZEGAMA_INGEST_MAX_BATCH": "many"})
    with pytest.raises(SettingsError, match="--osmand-port"):
        load(parse("--osmand-port", "x", "--no-auth"), {})
    with pytest.raises(SettingsError, match="TCP port"):
        load(parse("--port", "70000", "--no-auth"), {})
    with pytest.raises(SettingsError, match="ZEGAMA_INGEST_NO_AUTH"):
        load(parse(), {"ZEGAMA_INGEST_NO_AUTH": "perhaps"})


def test_secrets_are_masked_everywhere() -> None:
    s = load(parse("--admin-key", "hunter2"), {"ZEGAMA_INGEST_KEY": "sekrit"})
    assert "sekrit" not in repr(s) and "hunter2" not in repr(s)
    masked = s.masked()
    assert masked["ingest_key"] == "***" and masked["admin_key"] == "***"
    assert masked["device_secret"] == ""
    with pytest.raises(SettingsError) as info:
        load(parse("--ingest-key", "k"), {"ZEGAMA_INGEST_RETRY_AFTER_S": "0"})
    assert "retry_after_s" in str(info.value)


def test_help_names_every_variable(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="ingest")
    add_arguments(parser)
    text = parser.format_help()
    for name in ("ZEGAMA_INGEST_PORT", "ZEGAMA_KAFKA_BOOTSTRAP", "ZEGAMA_INGEST_KEY",
                 "ZEGAMA_INGEST_ADMIN_KEY", "ZEGAMA_INGEST_RELOAD_INTERVAL_S"):
        assert name in " ".join(text.split())


def test_race_id_defaults_to_folder_name(tmp_path: Path) -> None:
    folder = tmp_path / "loop-2027"
    assert IngestSettings(race_dir=folder).race == "loop-2027"
    assert IngestSettings(race_dir=folder, race_id="x").race == "x"


def test_not_a_number_is_not_positive() -> None:
    with pytest.raises(SettingsError, match="ack_timeout_s must be positive"):
        load(parse("--no-auth", "--ack-timeout-s", "nan"), {})
