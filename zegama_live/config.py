"""Settings plumbing shared by every service: flag > environment variable > default.

Each service declares one frozen dataclass of settings (defaults in code) and a tuple of
``Option`` naming each setting's environment variable; ``add_arguments`` gives every
setting a flag whose help names the variable and the default, and ``load_values``
reads flags and the environment (the only place the environment is read). Secrets are
never shown: ``***`` in help and errors.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any


class SettingsError(ValueError):
    """A setting with a value that cannot be used; the message names the flag and variable."""


@dataclass(frozen=True)
class Option:
    name: str
    env: str
    help: str
    parse: Callable[[str], Any]
    flag: bool = False  # a switch without a value


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"{text!r} is not a boolean (use 1/0, true/false)")


def add_arguments(parser: argparse.ArgumentParser, options: Collection[Option],
                  defaults: object, secrets: Collection[str] = ()) -> None:
    """Add one flag per option; its help names the environment variable and default."""
    group = parser.add_argument_group("settings (flag > environment variable > default)")
    for opt in options:
        flag = "--" + opt.name.replace("_", "-")
        default = "***" if opt.name in secrets else getattr(defaults, opt.name)
        shown = f" default {default!s}" if default not in ("", "***", ()) else ""
        text = f"{opt.help} [env {opt.env};{shown or ' no default'}]"
        if opt.flag:
            group.add_argument(flag, dest=opt.name, action="store_true", default=None, help=text)
        else:
            group.add_argument(flag, dest=opt.name, default=None, metavar="VALUE", help=text)


def load_values(options: Collection[Option], args: argparse.Namespace | None = None,
                environ: Mapping[str, str] | None = None,
                secrets: Collection[str] = ()) -> dict[str, Any]:
    """The values given by flags or the environment, parsed, by setting name.

    Raises:
        SettingsError: naming the flag or variable of a value that does not parse.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for opt in options:
        given = getattr(args, opt.name, None) if args is not None else None
        source, text = ("--" + opt.name.replace("_", "-"), given)
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
