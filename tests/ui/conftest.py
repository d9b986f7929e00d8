"""Fixtures for the browser suite: a live `bastion serve`, a stand-in relying party, and Chromium.

Everything expensive (the provider process, the browser) is shared per module so the whole UI
suite stays well under a minute; each test gets its own browser context, hence its own cookies.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Generator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # so `tests.live_server` imports however pytest is started
    sys.path.insert(0, str(REPO_ROOT))

from tests.live_server import LiveServer, live_server  # noqa: E402
from tests.ui.helpers import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, CallbackServer  # noqa: E402


@pytest.fixture(scope="module")
def callback_server() -> Iterator[CallbackServer]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = b"<!doctype html><title>Client</title><p>callback received</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, name="ui-callback-server", daemon=True)
    thread.start()
    try:
        yield CallbackServer(base_url, f"{base_url}/callback", seen)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def bastion(
    tmp_path_factory: pytest.TempPathFactory, callback_server: CallbackServer
) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("bastion-ui")
    with live_server(tmp, redirect_uri=callback_server.redirect_uri) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/ensure-chromium.sh` "
                    "(not `playwright install`, which cannot download here)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for stale in ARTIFACTS.glob("*.png"):  # a screenshot on disk always comes from this run
        stale.unlink()
    return ARTIFACTS


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    report = getattr(request.node, "rep_call", None)
    return report is None or report.failed


@pytest.fixture
def diagnostics(
    request: pytest.FixtureRequest, bastion: LiveServer, artifacts: Path
) -> Iterator[list[BrowserContext]]:
    """Register contexts here; on failure, screenshot their pages and print the server log."""
    contexts: list[BrowserContext] = []
    yield contexts
    failed = _failed(request)
    for context in contexts:
        if failed:
            for i, page in enumerate(context.pages):
                try:
                    page.screenshot(path=artifacts / f"FAILED-{request.node.name}-{i}.png", full_page=True)
                    print(f"[ui] page {i} at failure: {page.url}")
                except Exception as exc:  # diagnostics must not mask the real failure
                    print(f"[ui] could not screenshot page {i}: {exc}")
        context.close()
    if failed:
        log = Path(bastion.env["BASTION_VAR_DIR"]) / "server.log"
        if log.exists():
            print("[ui] bastion serve log (tail):\n" + "\n".join(log.read_text().splitlines()[-60:]))
