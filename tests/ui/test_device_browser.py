"""A real browser approves a device authorization (RFC 8628) while the "device" polls for tokens.

The test plays both sides: the device (a public client registered with the CLI) starts the flow at
/device_authorization and polls /token from a background thread, keeping the interval and obeying
`slow_down`; headless Chromium plays the user on their phone or laptop, typing the user code at the
plain verification URI, signing in and allowing. Screenshots land in test-artifacts/ui/.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Response

from tests.live_server import LiveServer
from tests.ui.helpers import new_context
from tests.ui.test_browser_login import PHONE, assert_anti_framing, assert_fits_phone, body_text, jwt_claims, shot

pytestmark = pytest.mark.ui

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE = re.compile(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}")
SCOPE = "openid profile offline_access"
CLIENT_NAME = "Living Room TV"
CODE_INPUT = 'input[name="user_code"]'
CODE_SUBMIT = f'form:has({CODE_INPUT}):not(:has(input[name="password"])) button[type="submit"]'
LOGIN_SUBMIT = 'form:has(input[name="password"]) button[type="submit"]'
ALLOW = 'button[name="decision"][value="allow"]'
DENY = 'button[name="decision"][value="deny"]'
WAITING = ("authorization_pending", "slow_down")


@dataclass(frozen=True)
class Poll:
    started: float
    ended: float
    status: int
    body: dict[str, Any]

    @property
    def error(self) -> str | None:
        error = self.body.get("error")
        return str(error) if error is not None else None


@dataclass
class DevicePoller:
    """The device's side: poll /token every `interval` seconds (growing on slow_down) until an answer."""

    token_url: str
    client_id: str
    device_code: str
    interval: float
    deadline: float
    polls: list[Poll] = field(default_factory=list)
    first_answer: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    failure: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(timeout=10) as http:
                while not self.stop.is_set():
                    started = time.monotonic()
                    response = http.post(self.token_url, data={"grant_type": GRANT, "device_code": self.device_code,
                                                               "client_id": self.client_id})
                    poll = Poll(started, time.monotonic(), response.status_code, dict(response.json()))
                    self.polls.append(poll)
                    self.first_answer.set()
                    if poll.error not in WAITING:
                        return
                    if poll.error == "slow_down":  # RFC 8628 §3.5: keep the interval 5 s longer from now on
                        self.interval += 5
                    if time.monotonic() + self.interval > self.deadline:
                        return
                    # Measured from the response, so the provider never sees two polls closer than the interval.
                    self.stop.wait(self.interval + 0.2)
        except BaseException as exc:  # surfaced by the test, not lost in the thread
            self.failure = exc
            self.first_answer.set()


def register_tv(bastion: LiveServer) -> str:
    client_id = "tv-" + secrets.token_hex(4)
    bastion.cli("clients", "create", "--client-id", client_id, "--public",
                "--grant-type", GRANT, "--grant-type", "refresh_token",
                "--scope", "openid profile offline_access", "--name", CLIENT_NAME)
    return client_id


def start_device_authorization(bastion: LiveServer, client_id: str) -> dict[str, Any]:
    response = httpx.post(f"{bastion.issuer}/device_authorization", data={"client_id": client_id, "scope": SCOPE},
                          timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert USER_CODE.fullmatch(str(body.get("user_code"))), body
    assert body.get("device_code"), body
    assert body.get("verification_uri") == f"{bastion.issuer}/device", body
    assert int(body.get("interval", 0)) >= 1 and int(body.get("expires_in", 0)) > 0, body
    return body


def as_a_human_types_it(user_code: str) -> str:
    """'WDJB-MJHT' -> 'wdjb mjht': lower case, a space for the dash (RFC 8628 §6.1)."""
    return user_code.lower().replace("-", " ")


def submit(page: Page, selector: str) -> Response:
    with page.expect_navigation() as navigation:
        page.click(selector)
    response = navigation.value
    assert response is not None
    return response


def open_code_entry(page: Page, bastion: LiveServer, verification_uri: str) -> Response:
    response = page.goto(verification_uri)
    assert response is not None and response.status == 200, response and response.status
    assert page.url == f"{bastion.issuer}/device", page.url
    assert page.input_value(CODE_INPUT) == "", "the plain verification URI must not prefill a code"
    return response


def test_device_flow_in_a_real_browser(
    browser: Browser, bastion: LiveServer, artifacts: Path, diagnostics: list[BrowserContext],
) -> None:
    client_id = register_tv(bastion)
    device = start_device_authorization(bastion, client_id)
    user_code = str(device["user_code"])
    poller = DevicePoller(f"{bastion.issuer}/token", client_id, str(device["device_code"]),
                          interval=float(device["interval"]), deadline=time.monotonic() + 25)
    thread = threading.Thread(target=poller.run, name="ui-device-poller", daemon=True)
    thread.start()
    try:
        # The device is told to wait before anyone has even opened the page.
        assert poller.first_answer.wait(10), "the first token poll did not answer"
        assert poller.failure is None, poller.failure
        first = poller.polls[0]
        assert first.status == 400 and first.error == "authorization_pending", first

        context = new_context(browser, viewport={"width": 1280, "height": 800})
        diagnostics.append(context)
        page = context.new_page()

        # Code entry at the plain verification URI, typed the sloppy way a person would.
        entry = open_code_entry(page, bastion, str(device["verification_uri"]))
        assert_anti_framing(entry, "device code page")
        page.locator(CODE_INPUT).press_sequentially(as_a_human_types_it(user_code))
        assert page.input_value(CODE_INPUT) == as_a_human_types_it(user_code)
        shot(page, artifacts, "10-device-code")

        # A fresh browser has no session: sign in (the code travels along and is shown canonically).
        sign_in = submit(page, CODE_SUBMIT)
        assert sign_in.status == 200, (sign_in.status, body_text(page))
        assert page.locator('input[name="password"]').get_attribute("type") == "password"
        assert user_code in body_text(page), body_text(page)
        shot(page, artifacts, "11-device-sign-in")

        page.fill('input[name="username"]', bastion.username)
        page.fill('input[name="password"]', bastion.password)
        consent = submit(page, LOGIN_SUBMIT)
        assert consent.status == 200, (consent.status, body_text(page))
        page.wait_for_selector(ALLOW)
        assert page.locator(DENY).count() == 1
        consent_text = body_text(page)
        assert CLIENT_NAME in consent_text and user_code in consent_text, consent_text
        assert_anti_framing(consent, "device consent page")
        shot(page, artifacts, "12-device-consent")

        # Nothing has been approved yet, so every answer the device got so far says "keep waiting".
        before = [p for p in poller.polls if p.ended]
        assert before and all(p.error in WAITING for p in before), before
        approved_at = time.monotonic()
        done = submit(page, ALLOW)
        assert done.status == 200, done.status
        decided_at = time.monotonic()
        assert page.locator("h1").inner_text().strip() == "Device connected", body_text(page)
        shot(page, artifacts, "13-device-done")

        # The device's next poll (at its own pace) gets the tokens.
        thread.join(timeout=poller.interval + 10)
        assert not thread.is_alive(), f"the device is still polling: {poller.polls}"
    finally:
        poller.stop.set()
        thread.join(timeout=5)
    assert poller.failure is None, poller.failure
    *waiting, last = poller.polls
    assert waiting and all(p.status == 400 and p.error == "authorization_pending" for p in waiting), waiting
    # A poll racing the click may go either way; one sent after the decision page came back may not.
    assert all(p.started < decided_at for p in waiting), f"still pending after the user allowed: {waiting}"
    assert last.status == 200 and last.ended > approved_at, f"tokens before the user allowed: {last}"
    tokens = last.body
    for name in ("access_token", "id_token", "refresh_token"):
        assert tokens.get(name), f"no {name}: {tokens}"
    assert str(tokens.get("token_type", "")).lower() == "bearer", tokens
    claims = jwt_claims(tokens["id_token"])
    assert claims.get("iss") == bastion.issuer, claims
    audience = claims.get("aud", [])
    assert client_id in ([audience] if isinstance(audience, str) else audience), claims
    assert claims.get("sub"), claims

    # The device code is single use, and the refresh token really works for the public client.
    replay = httpx.post(f"{bastion.issuer}/token", timeout=10,
                        data={"grant_type": GRANT, "device_code": device["device_code"], "client_id": client_id})
    assert replay.status_code == 400 and replay.json().get("error") == "invalid_grant", replay.text
    refreshed = httpx.post(f"{bastion.issuer}/token", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id})
    assert refreshed.status_code == 200 and refreshed.json().get("access_token"), refreshed.text


def test_device_code_page_fits_a_phone(
    browser: Browser, bastion: LiveServer, artifacts: Path, diagnostics: list[BrowserContext],
) -> None:
    context = new_context(browser, **PHONE)
    diagnostics.append(context)
    page = context.new_page()
    open_code_entry(page, bastion, f"{bastion.issuer}/device")
    page.locator(CODE_INPUT).press_sequentially("wdjb mjht")
    shot(page, artifacts, "14-device-code-phone")
    assert_fits_phone(page, "device code page")


def test_wrong_device_code_shows_a_clear_error(
    browser: Browser, bastion: LiveServer, artifacts: Path, diagnostics: list[BrowserContext],
) -> None:
    context = new_context(browser, viewport={"width": 1280, "height": 800})
    diagnostics.append(context)
    page = context.new_page()
    open_code_entry(page, bastion, f"{bastion.issuer}/device")
    # Well-formed, so the error is about the code not existing rather than its shape.
    wrong = "".join(secrets.choice("BCDFGHJKLMNPQRSTVWXZ") for _ in range(8))
    page.locator(CODE_INPUT).press_sequentially(f"{wrong[:4]}-{wrong[4:]}")
    response = submit(page, CODE_SUBMIT)
    assert response.status == 400, response.status
    assert page.url == f"{bastion.issuer}/device", page.url
    alert = page.locator('[role="alert"]')
    assert alert.count() == 1 and alert.is_visible(), body_text(page)
    message = alert.inner_text()
    assert re.search(r"not valid|invalid|wrong|incorrect", message, re.I), message
    assert re.search(r"check|try again", message, re.I), message
    # The user stays on the code form to correct it: no sign-in, no consent.
    assert page.locator(CODE_INPUT).is_visible()
    assert page.input_value(CODE_INPUT) == f"{wrong[:4]}-{wrong[4:]}", "the mistyped code should stay editable"
    assert page.locator('input[name="password"]').count() == 0
    assert page.locator(ALLOW).count() == 0
    shot(page, artifacts, "15-device-wrong-code")
