"""Debian's Chromium, headless, driven by Playwright: the page tests' browser.

The browser is the system one (``/usr/bin/chromium``, installed by the OS package
manager here and in CI); Playwright's own browser downloads are never used. Each launch
gets a fresh profile folder, so no state leaks between runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import BrowserContext, sync_playwright

CHROMIUM = Path(os.environ.get("ZEGAMA_CHROMIUM", "/usr/bin/chromium"))
ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync")
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "pages"


class BrowserMissing(RuntimeError):
    """No Chromium at the expected path."""


@contextmanager
def chromium(viewport: tuple[int, int] = (1280, 900),
             *, is_mobile: bool = False) -> Iterator[BrowserContext]:
    """A headless Chromium context with a fresh profile, closed (and the profile removed)
    on exit.

    Raises:
        BrowserMissing: Chromium is not at ``CHROMIUM``; install Debian's ``chromium``
            package or set ZEGAMA_CHROMIUM to its path.
    """
    if not CHROMIUM.exists():
        raise BrowserMissing(f"no Chromium at {CHROMIUM}: install the 'chromium' package "
                             "(apt-get install chromium) or set ZEGAMA_CHROMIUM")
    profile = tempfile.mkdtemp(prefix="zegama-chromium-")
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), headless=True, args=list(ARGS),
                viewport={"width": viewport[0], "height": viewport[1]},
                is_mobile=is_mobile, has_touch=is_mobile,
                device_scale_factor=2 if is_mobile else 1)
            try:
                yield ctx
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def artifact(name: str) -> Path:
    """The path of a test artifact (screenshot) under var/test-artifacts/pages/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
