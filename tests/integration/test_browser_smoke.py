"""The browser test infrastructure works: Debian's Chromium under Playwright loads a page from a
loopback http.server, runs its JavaScript, keeps and sends cookies, and takes a screenshot."""

from __future__ import annotations

import http.server
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration import browser as browser_mod
from tests.integration.browser import screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>koral smoke</title></head>
<body style="font-family: DejaVu Sans, sans-serif"><h1 id="h">static</h1>
<script>
document.getElementById("h").textContent = "js ran: " + (6 * 7);
document.cookie = "from_js=yes; path=/; SameSite=Strict";
</script></body></html>"""


class Handler(http.server.BaseHTTPRequestHandler):
    cookies_seen: list[str] = []

    def do_GET(self) -> None:
        if self.path != "/":  # Chromium's own /favicon.ico, which may come after the page set cookies
            self.send_error(404)
            return
        self.cookies_seen.append(self.headers.get("Cookie", ""))
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Set-Cookie", "session=abc123; Path=/; HttpOnly; SameSite=Strict")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Handler.cookies_seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_chromium_runs_js_keeps_cookies_and_screenshots(
    browser: Browser, page: Page, site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = subprocess.run(["chromium", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"\n{version}; Playwright's view: {browser.version}; launch {browser_mod.launch_seconds:.2f}s")
    assert browser_mod.launch_seconds is not None and browser_mod.launch_seconds < 60
    page.goto(site)
    assert page.locator("#h").text_content() == "js ran: 42"
    names = {c["name"]: c for c in page.context.cookies()}
    assert names["session"]["value"] == "abc123" and names["session"]["httpOnly"] is True
    assert names["from_js"]["value"] == "yes"
    page.reload()
    assert "session=abc123" in Handler.cookies_seen[-1] and "from_js=yes" in Handler.cookies_seen[-1]
    monkeypatch.setenv(browser_mod.ARTIFACTS_ENV, str(tmp_path))
    monkeypatch.delenv(browser_mod.UPDATE_ENV, raising=False)
    shot = screenshot(page, "browser-smoke", full_page=False)
    raw = shot.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", raw[16:24])  # the IHDR chunk
    assert (width, height) == (browser_mod.VIEWPORT["width"], browser_mod.VIEWPORT["height"])
    assert not (browser_mod.DOCS_IMAGES / "browser-smoke.png").exists()


def test_a_fresh_page_shares_no_cookies(page: Page, site: str) -> None:
    page.goto(site)
    assert Handler.cookies_seen == [""]  # not the previous test's session


def test_missing_chromium_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda _name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: Debian's chromium is not installed"):
        browser_mod.chromium_path()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        browser_mod.chromium_path()
