"""A real browser runs the authorization code flow against a live `bastion serve`.

Headless Chromium follows exactly what a user's browser would: /authorize -> login page ->
consent page -> the client's redirect URI, then the test exchanges the code the browser
obtained at /token. Screenshots of every page land in test-artifacts/ui/.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Response

from tests.live_server import LiveServer
from tests.ui.helpers import CallbackServer, new_context

pytestmark = pytest.mark.ui

LOGIN_FORM = 'form:has(input[name="password"])'
LOGIN_SUBMIT = f'{LOGIN_FORM} :is(button:not([type]), button[type="submit"], input[type="submit"])'
ALLOW = 'button[name="decision"][value="allow"]'
DENY = 'button[name="decision"][value="deny"]'
SCOPE = "openid profile email"
# Wording that would tell an attacker whether an account exists.
ENUMERATING_WORDS = ("unknown user", "no such user", "user not found", "not found", "does not exist",
                     "unknown username", "no account")
GENERIC_ERROR = r"invalid|incorrect|wrong|failed|did not match|not recognised|not recognized"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_url(server: LiveServer, redirect_uri: str, state: str, nonce: str, challenge: str,
                  scope: str = SCOPE) -> str:
    return server.issuer + "/authorize?" + urlencode({
        "response_type": "code",
        "client_id": server.client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    })


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def shot(page: Page, artifacts: Path, name: str) -> Path:
    path = artifacts / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def body_text(page: Page) -> str:
    return page.inner_text("body")


def assert_anti_framing(response: Response, what: str) -> None:
    headers = response.all_headers()
    assert headers.get("x-frame-options", "").upper() == "DENY", f"{what}: X-Frame-Options={headers}"
    csp = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, f"{what}: Content-Security-Policy={csp!r}"


def assert_on_login_page(page: Page, server: LiveServer) -> None:
    assert re.match(re.escape(server.issuer) + r"/interaction/[^/?#]+", page.url), page.url
    assert page.locator(f'{LOGIN_FORM} input[name="username"]').count() == 1
    assert page.locator(f'{LOGIN_FORM} input[name="password"]').get_attribute("type") == "password"
    assert page.locator(LOGIN_SUBMIT).count() >= 1


def submit_login(page: Page, username: str, password: str) -> Response:
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    with page.expect_navigation() as navigation:
        page.locator(LOGIN_SUBMIT).first.click()
    response = navigation.value
    assert response is not None
    return response


def assert_failed_login(page: Page, response: Response, server: LiveServer, callback: CallbackServer,
                        login_text: str) -> str:
    """The attempt re-renders the login form on the provider itself, with a generic error."""
    assert response.request.method == "POST", response.request.method
    assert response.request.redirected_from is None, "a failed login must not redirect"
    assert page.url.startswith(server.issuer + "/"), page.url
    assert not callback.requests, f"the client was contacted after a failed login: {callback.requests}"
    assert page.locator(LOGIN_SUBMIT).count() >= 1, "the login form is not shown again"
    assert page.input_value('input[name="password"]') == "", "the rejected password was echoed back"
    text = body_text(page)
    lowered = text.lower()
    for words in ENUMERATING_WORDS:
        assert words not in lowered, f"error message reveals account existence ({words!r}): {text!r}"
    assert text != login_text, "no error message appeared"
    assert re.search(GENERIC_ERROR, lowered), f"no recognisable error message: {text!r}"
    return text


def test_authorization_code_flow_in_a_real_browser(
    browser: Browser, bastion: LiveServer, callback_server: CallbackServer, artifacts: Path,
    diagnostics: list[BrowserContext],
) -> None:
    context = new_context(browser, viewport={"width": 1280, "height": 800})
    diagnostics.append(context)
    page = context.new_page()
    redirect_uri = callback_server.redirect_uri
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    verifier, challenge = pkce_pair()

    # /authorize sends the browser to the provider's login page.
    response = page.goto(authorize_url(bastion, redirect_uri, state, nonce, challenge))
    assert response is not None and response.status == 200, response and response.status
    assert_on_login_page(page, bastion)
    assert_anti_framing(response, "login page")
    login_text = body_text(page)
    shot(page, artifacts, "01-login")

    # An unknown user and a wrong password get the same generic answer, and nobody is redirected.
    unknown = submit_login(page, "mallory-" + secrets.token_hex(4), "correct horse battery")
    unknown_text = assert_failed_login(page, unknown, bastion, callback_server, login_text)
    wrong = submit_login(page, bastion.username, "not the password")
    wrong_text = assert_failed_login(page, wrong, bastion, callback_server, login_text)
    assert wrong_text == unknown_text, "wrong-password and unknown-user pages differ (account enumeration)"
    shot(page, artifacts, "02-login-wrong-password")

    # The right password leads to the consent page for the client.
    consent = submit_login(page, bastion.username, bastion.password)
    assert consent.status == 200, consent.status
    page.wait_for_selector(ALLOW)
    assert page.url.startswith(bastion.issuer + "/"), page.url
    assert "Interop App" in body_text(page)
    assert page.locator(DENY).count() == 1
    assert_anti_framing(consent, "consent page")
    assert not callback_server.requests
    shot(page, artifacts, "03-consent")

    # Allow: the browser really lands on the client's redirect URI with code, state and iss.
    with page.expect_navigation(url=lambda url: url.startswith(redirect_uri)) as landed:
        page.click(ALLOW)
    assert landed.value is not None and landed.value.status == 200
    assert "callback received" in body_text(page)
    assert urlsplit(page.url)._replace(query="", fragment="").geturl() == redirect_uri, page.url
    params = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
    assert "error" not in params, params
    assert params.get("code"), params
    assert params.get("state") == state, params
    assert params.get("iss") == bastion.issuer, params
    client_paths = [urlsplit(path).path for path in callback_server.requests if path != "/favicon.ico"]
    assert client_paths == ["/callback"], callback_server.requests
    shot(page, artifacts, "04-client-callback")

    # The code the browser obtained works at /token (client_secret_basic + PKCE verifier) ...
    token_request = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    auth = (bastion.client_id, bastion.client_secret)
    token = httpx.post(f"{bastion.issuer}/token", data=token_request, auth=auth, timeout=10)
    assert token.status_code == 200, token.text
    tokens = token.json()
    assert tokens.get("access_token"), tokens
    assert tokens.get("id_token"), tokens
    assert str(tokens.get("token_type", "")).lower() == "bearer", tokens
    claims = jwt_claims(tokens["id_token"])
    assert claims.get("iss") == bastion.issuer, claims
    audience = claims.get("aud", [])
    assert bastion.client_id in ([audience] if isinstance(audience, str) else audience), claims
    assert claims.get("nonce") == nonce, claims
    assert claims.get("sub"), claims
    # ... exactly once.
    replay = httpx.post(f"{bastion.issuer}/token", data=token_request, auth=auth, timeout=10)
    assert replay.status_code == 400, replay.text
    assert replay.json().get("error") == "invalid_grant", replay.text

    # An unregistered redirect_uri gets an HTML error page from the provider: 400, no redirect.
    error_page = context.new_page()
    evil = f"{callback_server.base_url}/not-registered"
    before = list(callback_server.requests)
    error = error_page.goto(authorize_url(bastion, evil, secrets.token_urlsafe(16), nonce, challenge))
    assert error is not None
    assert error.status == 400, error.status
    assert error.request.redirected_from is None, "redirected despite an unregistered redirect_uri"
    assert error_page.url.startswith(bastion.issuer + "/authorize"), error_page.url
    assert "text/html" in error.all_headers().get("content-type", ""), error.all_headers()
    assert callback_server.requests == before, callback_server.requests
    error_text = body_text(error_page)
    assert error_text.strip(), "the error page is blank"
    assert "redirect" in error_text.lower(), error_text
    shot(error_page, artifacts, "05-error-unregistered-redirect-uri")


PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
         "has_touch": True}


def assert_fits_phone(page: Page, what: str) -> None:
    meta = page.evaluate("() => document.querySelector('meta[name=viewport]')?.content ?? ''")
    # With is_mobile, a page without <meta name=viewport content="width=device-width"> lays out at 980px.
    assert "width=device-width" in meta.replace(" ", ""), f"{what}: no responsive meta viewport ({meta!r})"
    width = page.evaluate("() => window.innerWidth")
    # Mobile Chromium widens the layout viewport (zooming out) when content does not fit.
    assert width == PHONE["viewport"]["width"], f"{what}: content too wide, layout viewport grew to {width}px"
    scroll_width = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{what}: horizontal scroll ({scroll_width}px wide in a {width}px viewport)"
    overflowing = page.evaluate("""() => [...document.querySelectorAll('input, button, select, textarea, a')]
        .filter(e => { const r = e.getBoundingClientRect();
                       return r.width > 0 && (r.left < -1 || r.right > window.innerWidth + 1); })
        .map(e => e.outerHTML.slice(0, 120))""")
    assert not overflowing, f"{what}: controls outside the viewport: {overflowing}"


def test_login_and_consent_fit_a_phone(
    browser: Browser, bastion: LiveServer, callback_server: CallbackServer, artifacts: Path,
    diagnostics: list[BrowserContext],
) -> None:
    # A user of its own: alice's consent from the other test would skip the consent page.
    username, password = "mobile-" + secrets.token_hex(4), "a phone-sized passphrase"
    bastion.cli("users", "create", "--username", username, "--password", password,
                "--email", f"{username}@example.com", "--name", "Mobile Tester")
    context = new_context(browser, **PHONE)
    diagnostics.append(context)
    page = context.new_page()
    _verifier, challenge = pkce_pair()
    # Every scope the client may ask for, so the consent page is as long as it gets.
    url = authorize_url(bastion, callback_server.redirect_uri, secrets.token_urlsafe(16),
                        secrets.token_urlsafe(16), challenge, scope="openid profile email address phone")

    response = page.goto(url)
    assert response is not None and response.status == 200
    assert_on_login_page(page, bastion)
    shot(page, artifacts, "06-mobile-login")
    assert_fits_phone(page, "login page")

    submit_login(page, username, password)
    page.wait_for_selector(ALLOW)
    shot(page, artifacts, "07-mobile-consent")
    assert_fits_phone(page, "consent page")


def test_connected_apps_page_lists_and_revokes(
    browser: Browser, bastion: LiveServer, callback_server: CallbackServer, artifacts: Path,
    diagnostics: list[BrowserContext],
) -> None:
    username, password = "apps-" + secrets.token_hex(4), "a connected-apps passphrase"
    bastion.cli("users", "create", "--username", username, "--password", password)
    context = new_context(browser)
    diagnostics.append(context)
    page = context.new_page()
    _verifier, challenge = pkce_pair()
    page.goto(authorize_url(bastion, callback_server.redirect_uri, secrets.token_urlsafe(16),
                            secrets.token_urlsafe(16), challenge))
    submit_login(page, username, password)
    page.click(ALLOW)
    page.wait_for_url(f"{callback_server.redirect_uri}*")

    page.goto(f"{bastion.issuer}/account/apps")
    assert page.get_by_text("Interop App").is_visible()
    shot(page, artifacts, "08-connected-apps")
    page.click('button:has-text("Revoke access")')
    page.wait_for_load_state()
    assert page.get_by_text("No application has access to your account.").is_visible()
    shot(page, artifacts, "09-connected-apps-revoked")
    context.close()
