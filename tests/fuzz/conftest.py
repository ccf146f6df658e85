"""Fixtures of the fuzz tests, and the seed in every failure report.

The folder's helpers (``fuzz_support``) are put on the import path here: the project's
pytest configuration lists the other test folders that hold shared helpers.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parent))

from fuzz_support import SEED, SEED_ENV


@pytest.fixture(scope="module")
def bootstrap(kafka_broker) -> str:  # type: ignore[no-untyped-def]
    """kafka_bootstrap, for a module (a test of another module may have stopped it)."""
    if not kafka_broker.answers():
        kafka_broker.start()
    return kafka_broker.bootstrap  # type: ignore[no-any-return]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        report.sections.append(("fuzz seed", f"{SEED_ENV}={SEED} reproduces this run's inputs"))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if any(r.nodeid.startswith("tests/fuzz/") for rs in terminalreporter.stats.values()
           for r in rs if isinstance(r, pytest.TestReport)):
        terminalreporter.write_line(f"fuzz tests: seed {SEED} ({SEED_ENV}={SEED} reproduces "
                                    "their inputs)")
