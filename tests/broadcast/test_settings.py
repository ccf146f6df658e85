"""Settings: flag > environment > default, secrets masked, clear errors; the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import pytest
from broadcast_records import MINI

from broadcast.cli import configure, run
from broadcast.settings import SettingsError, load, parse_credentials


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(list(argv))


def test_flag_wins_over_environment_over_default() -> None:
    env = {"ZEGAMA_BROADCAST_HTTP_PORT": "9000", "ZEGAMA_BROADCAST_WS_PORT": "9001",
           "ZEGAMA_RACES": f"{MINI},{MINI.parent / 'mini'}"}
    s = load(parse("--ws-port", "7000"), env)
    assert (s.http_port, s.ws_port, s.tick_ms) == (9000, 7000, 100)
    assert s.races == (MINI, MINI)
    s = load(parse("--race", str(MINI), "--race", "races/zegama-2026"), env)
    assert s.races == (MINI, Path("races/zegama-2026"))


def test_keys_and_tokens_parse_and_never_show() -> None:
    env = {"ZEGAMA_RACES": str(MINI), "ZEGAMA_FEED_KEYS": "tv:abc, radio:def",
           "ZEGAMA_CONTROL_TOKENS": "maite:s3cret"}
    s = load(parse(), env)
    assert s.feed_keys == (("tv", "abc"), ("radio", "def"))
    shown = repr(s) + orjson.dumps(s.masked()).decode()
    assert "abc" not in shown and "s3cret" not in shown and "maite:***" in shown


@pytest.mark.parametrize(("env", "says"), [
    ({"ZEGAMA_RACES": str(MINI), "ZEGAMA_BROADCAST_WS_PORT": "x"}, "ZEGAMA_BROADCAST_WS_PORT"),
    ({"ZEGAMA_RACES": str(MINI), "ZEGAMA_FEED_KEYS": "tv"}, "ZEGAMA_FEED_KEYS=\\*\\*\\*"),
    ({}, "--race DIR"), ({"ZEGAMA_RACES": "/nowhere"}, "has no race.toml"),
    ({"ZEGAMA_RACES": str(MINI), "ZEGAMA_BROADCAST_TICK_MS": "0"}, "tick_ms must be positive"),
])
def test_bad_settings_are_named(env: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        load(parse(), env)


def test_credentials_refuse_entries_without_a_secret_or_twice_the_same_name() -> None:
    with pytest.raises(ValueError, match="entry 2"):
        parse_credentials("a:1,b")
    with pytest.raises(ValueError, match="twice"):
        parse_credentials("a:1,a:2")


def test_print_config_masks_secrets_and_bad_settings_exit_2(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ZEGAMA_CONTROL_TOKENS", "maite:s3cret")
    assert run(parse("--race", str(MINI), "--print-config")) == 0
    out = capsys.readouterr().out
    assert orjson.loads(out)["control_tokens"] == ["maite:***"] and "s3cret" not in out
    assert run(parse("--race", str(MINI), "--http-port", "70000")) == 2
    assert "http_port" in capsys.readouterr().err


def test_an_unreachable_broker_is_a_clear_error_not_a_traceback(capsys) -> None:  # type: ignore[no-untyped-def]
    args = parse("--race", str(MINI), "--bootstrap", "127.0.0.1:1", "--http-port", "0",
                 "--ws-port", "0")
    assert run(args) == 1
    err = capsys.readouterr().err
    assert "cannot start" in err and "127.0.0.1:1" in err and "Traceback" not in err


def test_help_shows_the_repeatable_race_flag_and_every_variable() -> None:
    parser = argparse.ArgumentParser(prog="broadcast")
    configure(parser)
    text = " ".join(parser.format_help().split())
    assert "--race DIR" in text and "[env ZEGAMA_RACES; no default]" in text
    assert "[env ZEGAMA_BROADCAST_TICK_MS; default 100]" in text
    assert "[env ZEGAMA_FEED_KEYS; no default]" in text and "--print-config" in text
