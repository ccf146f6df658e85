"""What every service command does around its own work.

``zegama-live ingest``, ``broadcast`` and ``process`` start alike: log lines in one
format, the settings from flags and the environment (printed and done with
``--print-config``, or a clear one-line error and exit status 2 when one cannot be
used), and then serve until SIGINT (Ctrl-C) or SIGTERM asks them to stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Protocol, TypeVar

import orjson

from zegama_live import repeats
from zegama_live.config import SettingsError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class Printable(Protocol):
    def masked(self) -> dict[str, object]: ...


S = TypeVar("S", bound=Printable)


def configure_logging() -> None:
    """Log INFO and above to stderr, one line per record with time, level and logger;
    warnings and errors that repeat are counted, not written (zegama_live/repeats.py)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    repeats.install()


def fail(command: str, problem: object, status: int = 2) -> int:
    """Print ``zegama-live <command>: <problem>`` on stderr and return ``status``."""
    print(f"zegama-live {command}: {problem}", file=sys.stderr)
    return status


def add_print_config(parser: argparse.ArgumentParser,
                     help: str = "print the effective settings and exit") -> None:
    """Add ``--print-config``, which ``settings_or_status`` answers."""
    parser.add_argument("--print-config", action="store_true", help=help)


def settings_or_status(command: str, args: argparse.Namespace,
                       load: Callable[[argparse.Namespace], S]) -> S | int:
    """The settings ``load`` reads from ``args``, or the exit status when the command is done.

    Done means a setting cannot be used (the SettingsError is printed by ``fail``:
    status 2) or ``--print-config`` was given (the masked settings are printed as JSON
    on stdout: status 0).
    """
    try:
        settings = load(args)
    except SettingsError as exc:
        return fail(command, exc)
    if getattr(args, "print_config", False):
        sys.stdout.write(orjson.dumps(settings.masked(), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
        return 0
    return settings


def stop_on_signals(stop: asyncio.Event | None = None) -> asyncio.Event:
    """The event set when SIGINT or SIGTERM arrives: ``stop``, or a new one.

    Call it from the running event loop. Where the loop cannot take signal handlers
    (not the main thread, or Windows) the event is only set by whoever else holds it.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def stop_child(proc: subprocess.Popen[bytes], grace_s: float = 30.0) -> bool:
    """Stop a child process as its own signal handling expects: SIGTERM, ``grace_s`` to
    finish, then SIGKILL. Returns True when it had to be killed; nothing when it had
    already exited."""
    if proc.poll() is not None:
        return False
    proc.terminate()
    try:
        proc.wait(grace_s)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return True
