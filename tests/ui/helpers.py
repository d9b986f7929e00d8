"""Shared constants and helpers for the browser suite (imported by conftest and the tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui"
DEFAULT_TIMEOUT_MS = 10_000


@dataclass
class CallbackServer:
    """A tiny relying party: answers every GET with 200 "callback received" and remembers paths."""

    base_url: str
    redirect_uri: str
    requests: list[str] = field(default_factory=list)


def new_context(browser: Browser, **options: Any) -> BrowserContext:
    context = browser.new_context(**options)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    context.set_default_navigation_timeout(DEFAULT_TIMEOUT_MS)
    return context
