"""Browser fixtures for the console's end-to-end tests: Playwright for Python driving Debian's
``chromium`` package (``playwright install`` cannot download browsers on these machines).

- ``browser`` (session): one headless Chromium, launched from ``shutil.which("chromium")``.
- ``page`` (function): a page in a fresh context (no cookies or storage shared between tests).
- :func:`screenshot`: a PNG into the artifacts dir (``KORAL_TEST_ARTIFACTS``, default
  ``test-artifacts/screenshots``), and into ``docs/images/`` too when
  ``KORAL_UPDATE_SCREENSHOTS=1`` (how the docs' screenshots are refreshed).

Missing Chromium or Playwright: the test is skipped on a developer's machine, but FAILS in CI
(``CI=true``), where a skipped browser test would hide that the console was never tried.
Registered for every integration module by tests/integration/conftest.py.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPO = Path(__file__).resolve().parents[2]
DOCS_IMAGES = REPO / "docs" / "images"
UPDATE_ENV = "KORAL_UPDATE_SCREENSHOTS"
ARTIFACTS_ENV = "KORAL_TEST_ARTIFACTS"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
VIEWPORT = {"width": 1280, "height": 800}

#: Seconds the session's Chromium took to launch (set by the ``browser`` fixture).
launch_seconds: float | None = None


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def browser_unavailable(reason: str) -> None:
    """Skip, or in CI fail: CI must run the browser tests, never silently skip them."""
    message = f"{reason} (install it with scripts/test.sh: tests/test-packages.txt, pyproject [test])"
    if in_ci():
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        browser_unavailable("Debian's chromium is not installed")
    assert path is not None
    return path


def artifacts_dir() -> Path:
    return Path(os.environ.get(ARTIFACTS_ENV) or REPO / "test-artifacts" / "screenshots")


def screenshot(page: Page, name: str, full_page: bool = True) -> Path:
    """Save ``name``.png of the page to the artifacts dir (and docs/images/ when updating docs)."""
    if not NAME_RE.match(name):
        raise ValueError(f"screenshot name {name!r}: lower-case letters, digits and dashes only")
    out = artifacts_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get(UPDATE_ENV) == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / f"{name}.png")
    return path


def launch_args() -> list[str]:
    # Chromium's sandbox refuses to run as root ("Running as root without --no-sandbox is not
    # supported"), and the test machines run the suite as root; only then is it turned off.
    return ["--no-sandbox"] if os.geteuid() == 0 else []


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    global launch_seconds
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_unavailable("Playwright for Python is not installed")
        raise
    with sync_playwright() as pw:
        started = time.monotonic()
        b = pw.chromium.launch(executable_path=executable, headless=True, args=launch_args())
        launch_seconds = time.monotonic() - started
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    try:
        yield context.new_page()
    finally:
        context.close()


def new_context(browser: Browser, **kwargs: Any) -> Any:
    """Another fresh context (a second user, a browser without the login token)."""
    return browser.new_context(viewport=VIEWPORT, **kwargs)  # type: ignore[arg-type]
