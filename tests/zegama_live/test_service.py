"""What every service command shares: settings at start, errors, logging, stopping."""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import orjson
import pytest

from zegama_live import service
from zegama_live.config import SettingsError


@dataclass(frozen=True)
class Toy:
    port: int = 8000
    key: str = "hunter2"

    def masked(self) -> dict[str, object]:
        return {"port": self.port, "key": "***"}


def load_toy(args: argparse.Namespace) -> Toy:
    if args.port < 0:
        raise SettingsError("port must be a TCP port within 0..65535")
    return Toy(port=args.port)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    service.add_print_config(parser)
    parser.add_argument("--port", type=int, default=8000)
    return parser.parse_args(list(argv))


def test_settings_are_returned_when_there_is_work_to_do(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert service.settings_or_status("toy", parse("--port", "9"), load_toy) == Toy(port=9)
    assert capsys.readouterr() == ("", "")


def test_print_config_prints_the_masked_settings_and_ends_with_0(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert service.settings_or_status("toy", parse("--print-config"), load_toy) == 0
    out = capsys.readouterr().out
    assert orjson.loads(out) == {"port": 8000, "key": "***"} and out.endswith("}\n")
    assert "hunter2" not in out


def test_a_bad_setting_is_one_line_on_stderr_and_ends_with_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("--port", "-1", "--print-config")
    assert service.settings_or_status("toy", args, load_toy) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "zegama-live toy: port must be a TCP port within 0..65535\n"


def test_fail_names_the_command_and_returns_the_status(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert service.fail("ingest", ValueError("no entrants.csv")) == 2
    assert service.fail("broadcast", "cannot start", status=1) == 1
    assert capsys.readouterr().err.splitlines() == [
        "zegama-live ingest: no entrants.csv", "zegama-live broadcast: cannot start"]


def test_print_config_help_is_the_services_own() -> None:
    parser = argparse.ArgumentParser()
    service.add_print_config(parser, "print the effective settings (keys masked) and exit")
    assert "(keys masked)" in parser.format_help()
    assert parser.parse_args([]).print_config is False


def test_configure_logging_writes_time_level_and_logger(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: calls.append(kw))
    service.configure_logging()
    assert calls == [{"level": logging.INFO, "format": service.LOG_FORMAT}]
    record = logging.LogRecord("ingest", logging.INFO, __file__, 1, "up", None, None)
    line = logging.Formatter(service.LOG_FORMAT).format(record)
    assert line.endswith(" INFO ingest up") and line[:4].isdigit()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_sets_the_stop_event(sig: signal.Signals) -> None:
    stop = service.stop_on_signals()
    try:
        assert not stop.is_set()
        os.kill(os.getpid(), sig)
        await asyncio.wait_for(stop.wait(), 5)
        assert stop.is_set()
    finally:
        loop = asyncio.get_running_loop()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(s)


async def test_the_given_event_is_the_one_set() -> None:
    mine = asyncio.Event()
    try:
        assert service.stop_on_signals(mine) is mine
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(mine.wait(), 5)
    finally:
        loop = asyncio.get_running_loop()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(s)


def test_outside_the_main_thread_only_the_holder_stops_it() -> None:
    async def in_thread() -> bool:
        stop = service.stop_on_signals()  # no signal handlers here, and no error either
        stop.set()
        return stop.is_set()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, in_thread()).result(timeout=10) is True


def test_stop_child_terminates_and_kills_only_a_child_that_ignores_it() -> None:
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert service.stop_child(polite) is False and polite.returncode == -signal.SIGTERM
    stubborn = subprocess.Popen([sys.executable, "-c", (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)")], stdout=subprocess.PIPE)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    assert service.stop_child(stubborn, grace_s=0.5) is True
    assert stubborn.returncode == -signal.SIGKILL
    assert service.stop_child(stubborn) is False  # already gone
