"""Settings plumbing: flag > environment > default, repeated flags, checks, masking."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from zegama_live import config
from zegama_live.config import Option, SettingsError, parse_bool


def _paths(text: str) -> tuple[Path, ...]:
    return tuple(Path(p) for p in text.split(",") if p.strip())


@dataclass(frozen=True)
class Toy:
    port: int = 8000
    rate: float = 1.0
    folders: tuple[Path, ...] = ()
    out: Path = Path("var/out")
    key: str = field(default="", repr=False)
    quiet: bool = False


SECRETS = ("key",)
OPTIONS = (
    Option("port", "TOY_PORT", "port", int),
    Option("rate", "TOY_RATE", "rate (1/s)", float),
    Option("folders", "TOY_FOLDERS", "folders", _paths, repeat=True, spelling="--folder",
           metavar="DIR"),
    Option("out", "TOY_OUT", "output folder", Path),
    Option("key", "TOY_KEY", "key (secret)", str),
    Option("quiet", "TOY_QUIET", "say less", parse_bool, flag=True),
)


def _short_key(text: str) -> str:
    if len(text) < 12:
        raise ValueError("shorter than 12 characters")
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="toy")
    config.add_arguments(p, OPTIONS, Toy(), SECRETS)
    return p


def load(*argv: str, env: dict[str, str] | None = None) -> Toy:
    args = parser().parse_args(list(argv))
    return Toy(**config.load_values(OPTIONS, args, env or {}, SECRETS))


def test_flag_beats_environment_beats_default() -> None:
    env = {"TOY_PORT": "9000", "TOY_RATE": "2.5"}
    assert (load(env=env).port, load(env=env).rate) == (9000, 2.5)
    assert load("--port", "9100", env=env).port == 9100
    assert load().port == 8000 and load().out == Path("var/out")


def test_a_repeated_flag_joins_its_values_and_beats_the_variable() -> None:
    s = load("--folder", "a", "--folder", "b", env={"TOY_FOLDERS": "c,d"})
    assert s.folders == (Path("a"), Path("b"))
    assert load(env={"TOY_FOLDERS": "c,d"}).folders == (Path("c"), Path("d"))


def test_a_switch_is_set_by_its_flag_or_a_boolean_variable() -> None:
    assert load("--quiet").quiet is True
    assert load(env={"TOY_QUIET": "yes"}).quiet is True
    assert load(env={"TOY_QUIET": "off"}).quiet is False
    with pytest.raises(SettingsError, match="TOY_QUIET='perhaps'"):
        load(env={"TOY_QUIET": "perhaps"})


def test_a_bad_value_names_the_flag_or_variable_and_hides_secrets() -> None:
    with pytest.raises(SettingsError, match="--port='x'"):
        load("--port", "x")
    with pytest.raises(SettingsError, match="TOY_RATE='fast'"):
        load(env={"TOY_RATE": "fast"})
    bad_secret = (Option("key", "TOY_KEY", "key", _short_key),)
    with pytest.raises(SettingsError) as info:
        config.load_values(bad_secret, None, {"TOY_KEY": "hunter2"}, SECRETS)
    assert str(info.value) == "TOY_KEY=***: shorter than 12 characters"


def test_help_names_flag_variable_and_default_but_no_secret() -> None:
    text = " ".join(parser().format_help().split())
    assert "--folder DIR" in text and "[env TOY_FOLDERS; no default]" in text
    assert "[env TOY_PORT; default 8000]" in text
    assert "[env TOY_KEY; no default]" in text
    with_key = argparse.ArgumentParser()
    config.add_arguments(with_key, OPTIONS, Toy(key="hunter2"), SECRETS)
    assert "hunter2" not in with_key.format_help()


def test_the_flag_of_an_option() -> None:
    assert OPTIONS[0].option_string == "--port"
    assert OPTIONS[2].option_string == "--folder"
    assert Option("max_body_bytes", "X", "", int).option_string == "--max-body-bytes"


def test_ports_must_fit_tcp() -> None:
    config.check_ports(Toy(port=0), ["port"])
    config.check_ports(Toy(port=65535), ["port"])
    for bad in (-1, 65536):
        with pytest.raises(SettingsError, match=r"^port must be a TCP port within 0\.\.65535$"):
            config.check_ports(Toy(port=bad), ["port"])


@pytest.mark.parametrize("rate", [0.0, -1.0, float("nan")])
def test_positive_settings_refuse_zero_negative_and_nan(rate: float) -> None:
    config.check_positive(Toy(rate=0.5), ["port", "rate"])
    with pytest.raises(SettingsError, match=r"^rate must be positive$"):
        config.check_positive(Toy(rate=rate), ["port", "rate"])


def test_masked_gives_json_ready_values_and_hides_secrets() -> None:
    s = Toy(folders=(Path("a"), Path("b")), key="hunter2")
    assert config.masked(s, SECRETS) == {
        "port": 8000, "rate": 1.0, "folders": ["a", "b"], "out": "var/out", "key": "***",
        "quiet": False}
    assert config.masked(Toy(), SECRETS)["key"] == ""
    assert config.masked(s, SECRETS, lambda v: f"{len(v)} chars")["key"] == "7 chars"
    assert config.masked(s)["key"] == "hunter2"  # nothing is secret unless named


def test_parse_bool_refuses_other_words() -> None:
    assert [parse_bool(t) for t in ("1", "TRUE", " on ", "0", "no", "")] == [
        True, True, True, False, False, False]
    with pytest.raises(ValueError, match="not a boolean"):
        parse_bool("maybe")
