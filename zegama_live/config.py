"""Settings plumbing shared by every service: flag > environment variable > default.

Each service declares one frozen dataclass of settings (defaults in code) and a tuple of
``Option`` naming each setting's environment variable; ``add_arguments`` gives every
setting a flag whose help names the variable and the default, and ``load_values``
reads flags and the environment (the only place the environment is read).
``check_ports`` and ``check_positive`` refuse unusable numbers with the same words in
every service, and ``masked`` gives the effective settings as JSON-ready values for
``--print-config``. Secrets are never shown: ``***`` in help, errors and ``masked``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A setting with a value that cannot be used; the message names the flag and variable."""


@dataclass(frozen=True)
class Option:
    """One setting: its field name, environment variable, help text and parser."""

    name: str
    env: str
    help: str
    parse: Callable[[str], Any]
    flag: bool = False  # a switch without a value
    repeat: bool = False  # a flag that may be given several times; its values are joined by ","
    spelling: str = ""  # the flag when it is not --name-with-dashes (e.g. --race for races)
    metavar: str = "VALUE"

    @property
    def option_string(self) -> str:
        """The command-line flag, such as ``--http-port``."""
        return self.spelling or "--" + self.name.replace("_", "-")


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"{text!r} is not a boolean (use 1/0, true/false)")


def parse_bootstrap(text: str) -> str:
    """Kafka bootstrap servers: ``host:port`` or a comma-separated list of them (any one
    answering is enough to find the whole cluster). Returns the list comma-joined."""
    servers = [part.strip() for part in text.split(",") if part.strip()]
    if not servers:
        raise ValueError("no Kafka server given: use host:port, or host:port,host:port,...")
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{server!r} is not host:port (a list is comma-separated: "
                             "kafka-1:9092,kafka-2:9092)")
    return ",".join(servers)


def faust_brokers(bootstrap: str) -> list[str]:
    """The same list as Faust's broker URLs."""
    return [f"kafka://{server}" for server in parse_bootstrap(bootstrap).split(",")]


def add_arguments(parser: argparse.ArgumentParser, options: Collection[Option],
                  defaults: object, secrets: Collection[str] = ()) -> None:
    """Add one flag per option; its help names the environment variable and default."""
    group = parser.add_argument_group("settings (flag > environment variable > default)")
    for opt in options:
        flag = opt.option_string
        default = "***" if opt.name in secrets else getattr(defaults, opt.name)
        shown = f" default {default!s}" if default not in ("", "***", ()) else ""
        text = f"{opt.help} [env {opt.env};{shown or ' no default'}]"
        if opt.flag:
            group.add_argument(flag, dest=opt.name, action="store_true", default=None, help=text)
        else:
            group.add_argument(flag, dest=opt.name, default=None, metavar=opt.metavar, help=text,
                               action="append" if opt.repeat else "store")


def load_values(options: Collection[Option], args: argparse.Namespace | None = None,
                environ: Mapping[str, str] | None = None,
                secrets: Collection[str] = ()) -> dict[str, Any]:
    """The values given by flags or the environment, parsed, by setting name.

    A repeated flag's values are joined by commas before they are parsed. The text of a
    secret is shown as ``***``, so its parser's ValueError must not repeat the text.

    Raises:
        SettingsError: naming the flag or variable of a value that does not parse.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for opt in options:
        given = getattr(args, opt.name, None) if args is not None else None
        if isinstance(given, list):  # a repeated flag
            given = ",".join(given)
        source, text = (opt.option_string, given)
        if given is None and opt.env in env:
            source, text = (opt.env, env[opt.env])
        if text is None:
            continue
        try:
            values[opt.name] = text if isinstance(text, bool) else opt.parse(text)
        except ValueError as exc:
            shown = "***" if opt.name in secrets else repr(text)
            raise SettingsError(f"{source}={shown}: {exc}") from None
    return values


def check_ports(settings: object, names: Iterable[str]) -> None:
    """Raises SettingsError naming the first of ``names`` that is not a TCP port (0 to 65535)."""
    for name in names:
        if not 0 <= getattr(settings, name) <= 65535:
            raise SettingsError(f"{name} must be a TCP port within 0..65535")


def check_positive(settings: object, names: Iterable[str]) -> None:
    """Raises SettingsError naming the first of ``names`` that is zero, negative or NaN."""
    for name in names:
        if not getattr(settings, name) > 0:
            raise SettingsError(f"{name} must be positive")


def mask_text(value: str) -> str:
    """A secret string as shown: ``***``, or empty when it is not set."""
    return "***" if value else ""


def masked(settings: Any, secrets: Collection[str] = (),
           mask: Callable[[Any], object] = mask_text) -> dict[str, object]:
    """The fields of a settings dataclass as JSON-ready values, secrets passed through ``mask``.

    Paths become strings and tuples lists, so that ``--print-config`` can print them.
    """
    return {f.name: mask(getattr(settings, f.name)) if f.name in secrets
            else _plain(getattr(settings, f.name)) for f in fields(settings)}


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value
