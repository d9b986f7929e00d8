"""`OIDCLogin` against a live Bastion, through Flask's test client: the browser's view of the login."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask, jsonify
from flask.testing import FlaskClient

from bastion.client import Client, RefreshTokenRevoked
from bastion.integrations import MemoryStore
from bastion.integrations.flask import SESSION_ID, USER, OIDCLogin, current_user, login_required, tokens
from tests.integrations.conftest import LiveBastion
from tests.integrations.helpers import (
    FLASK_ORIGIN,
    ProviderUser,
    callback_of,
    cookie_value,
    hidden_inputs,
    query,
    session_payload,
    set_cookies,
)


def make_app(bastion: LiveBastion, **options: Any) -> tuple[Flask, OIDCLogin]:
    app = Flask(__name__)
    app.secret_key = "integration-tests-" + "k" * 32
    app.config.update(SERVER_NAME=urlsplit(FLASK_ORIGIN).netloc, TESTING=True)  # exceptions propagate: no 500s
    oidc = OIDCLogin(app, issuer=bastion.issuer, client_id=bastion.client_id,
                     client_secret=bastion.client_secret, **options)

    @app.get("/")
    def home() -> Any:
        return jsonify(user=current_user())

    @app.get("/profile")
    @login_required
    def profile() -> Any:
        return jsonify(current_user())

    @app.get("/tokens")
    def held() -> Any:  # test-only: what the server keeps
        t = tokens()
        return jsonify(None if t is None else {"access_token": t.access_token, "id_token": t.id_token,
                                               "refresh_token": t.refresh_token, "expires_at": t.expires_at})

    @app.get("/refresh")
    def refreshed() -> Any:
        t = oidc.tokens(leeway=10**9)  # "expires within a billion seconds": refresh now
        return jsonify(None if t is None else {"access_token": t.access_token, "refresh_token": t.refresh_token})

    return app, oidc


@pytest.fixture
def app(bastion: LiveBastion) -> Iterator[Flask]:
    app, oidc = make_app(bastion)
    yield app
    oidc.close()


@pytest.fixture
def browser(app: Flask) -> FlaskClient:
    return app.test_client()


def log_in(browser: FlaskClient, alice: ProviderUser, next_url: str | None = "/profile") -> tuple[Any, list[str]]:
    """The whole login as the browser sees it; the callback's response and every Set-Cookie."""
    seen: list[str] = []
    start = browser.get("/login", query_string={"next": next_url} if next_url is not None else None)
    assert start.status_code in (302, 303), start.status_code
    seen += set_cookies(start)
    callback = callback_of(alice.authorize(start.headers["Location"]))
    assert callback.startswith(f"{FLASK_ORIGIN}/callback?"), callback
    done = browser.get(callback)
    seen += set_cookies(done)
    return done, seen


def session_cookie(browser: FlaskClient) -> dict[str, Any]:
    cookie = browser.get_cookie("session", domain=urlsplit(FLASK_ORIGIN).hostname or "")
    return session_payload(cookie.value) if cookie is not None and cookie.value else {}


def test_login_redirects_to_the_provider_with_pkce_and_keeps_the_rest_server_side(
        browser: FlaskClient, bastion: LiveBastion) -> None:
    response = browser.get("/login?next=/profile")
    assert response.status_code in (302, 303)
    location = response.headers["Location"]
    assert location.startswith(bastion.issuer + "/authorize?"), location
    params = query(location)
    assert params["client_id"] == "webapp"
    assert params["redirect_uri"] == f"{FLASK_ORIGIN}/callback"  # the callback view's external URL
    assert params["code_challenge_method"] == "S256" and params["code_challenge"]
    assert params["state"] and params["nonce"]
    assert params["scope"] == "openid profile email"
    assert set(session_cookie(browser)) == {SESSION_ID}  # only an opaque id: no verifier, nonce or state


def test_login_stores_claims_in_the_session_and_never_a_token_in_a_cookie(
        browser: FlaskClient, alice: ProviderUser) -> None:
    anonymous = browser.get("/login")
    sid_before = session_cookie(browser)[SESSION_ID]
    done, seen = log_in(browser, alice)
    seen += set_cookies(anonymous)
    assert done.status_code == 303 and done.headers["Location"] == "/profile"

    profile = browser.get("/profile")
    seen += set_cookies(profile)
    assert profile.status_code == 200
    user = profile.get_json()
    assert user["email"] == "alice@example.com" and user["name"] == "Alice Liddell"  # UserInfo merged in
    assert user["sub"] and user["iss"]

    held = browser.get("/tokens").get_json()
    assert held["access_token"] and held["id_token"]
    payloads = [session_payload(cookie_value(c)) for c in seen if c.startswith("session=") and cookie_value(c)]
    assert payloads, seen
    for cookie in seen:
        for secret in (held["access_token"], held["id_token"], *held["id_token"].split(".")):
            assert secret not in cookie
    for payload in payloads:
        assert set(payload) <= {SESSION_ID, USER}, payload
    final = session_cookie(browser)
    assert set(final) == {SESSION_ID, USER}
    assert final[USER]["email"] == "alice@example.com"
    assert final[SESSION_ID] != sid_before  # renewed at login (fixation)
    assert "access_token" not in str(final) and "code_verifier" not in str(final)


@pytest.mark.parametrize("evil", [
    "//evil.example/x", "https://evil.example/", "/\\evil.example", "\\\\evil.example", "/\t/evil.example",
    "javascript:alert(1)", "evil.example", "http:/evil.example",
])
def test_next_must_be_a_local_path(browser: FlaskClient, alice: ProviderUser, evil: str) -> None:
    done, _ = log_in(browser, alice, next_url=evil)
    assert done.status_code == 303
    assert done.headers["Location"] == "/", done.headers["Location"]


def test_next_keeps_a_local_path_with_its_query(browser: FlaskClient, alice: ProviderUser) -> None:
    done, _ = log_in(browser, alice, next_url="/profile?tab=emails&x=%2F%2Fnot-a-host")
    assert done.headers["Location"] == "/profile?tab=emails&x=%2F%2Fnot-a-host"


def assert_error_page(response: Any, *words: str) -> str:
    assert response.status_code == 400, response.status_code
    assert response.mimetype == "text/html"
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "File \"" not in text
    for word in words:
        assert word in text.lower(), text
    return text


def test_callback_without_a_login_in_flight_is_a_400_page(browser: FlaskClient, bastion: LiveBastion) -> None:
    assert_error_page(browser.get("/callback?code=abc&state=xyz"), "expired")
    browser.get("/login")
    assert_error_page(browser.get(f"/callback?code=abc&state=forged&iss={bastion.issuer}"), "expired")
    assert_error_page(browser.get("/callback"), "expired")
    assert_error_page(browser.post("/callback", data={"state": "x" * 5000, "code": "abc"}), "expired")
    assert browser.get("/").get_json() == {"user": None}


def test_callback_is_single_use_and_refusals_are_safe_pages(browser: FlaskClient, alice: ProviderUser,
                                                             bastion: LiveBastion) -> None:
    start = browser.get("/login")
    state = query(start.headers["Location"])["state"]
    # The provider reports a denial: a page saying so, and the login is used up.
    assert_error_page(browser.get(f"/callback?error=access_denied&state={state}&iss={bastion.issuer}"), "denied")
    callback = callback_of(alice.authorize(start.headers["Location"]))
    assert_error_page(browser.get(callback), "expired")

    # A response from another issuer (RFC 9207 mix-up) is refused, never a 500.
    start = browser.get("/login")
    state = query(start.headers["Location"])["state"]
    assert_error_page(browser.get(f"/callback?code=abc&state={state}&iss=https://evil.example"), "does not belong")

    # A replayed successful callback finds nothing.
    start = browser.get("/login")
    callback = callback_of(alice.authorize(start.headers["Location"]))
    assert browser.get(callback).status_code == 303
    assert_error_page(browser.get(callback), "expired")


def test_login_required_sends_anonymous_users_to_login_and_back(browser: FlaskClient, alice: ProviderUser) -> None:
    response = browser.get("/profile?tab=1")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert urlsplit(location).path == "/login"
    assert query(location) == {"next": "/profile?tab=1"}
    start = browser.get(location)
    done = browser.get(callback_of(alice.authorize(start.headers["Location"])))
    assert done.headers["Location"] == "/profile?tab=1"
    assert browser.get("/profile?tab=1").status_code == 200


def test_logout_ends_both_sessions(bastion: LiveBastion, alice: ProviderUser) -> None:
    store = MemoryStore()
    app, oidc = make_app(bastion, store=store)
    browser = app.test_client()
    try:
        log_in(browser, alice)
        held = browser.get("/tokens").get_json()
        assert len(store) == 1  # the session's tokens; the login in flight is gone

        response = browser.post("/logout")
        assert response.status_code == 303
        location = response.headers["Location"]
        assert location.startswith(bastion.issuer + "/logout?"), location
        assert query(location) == {"client_id": "webapp", "id_token_hint": held["id_token"],
                                   "post_logout_redirect_uri": f"{FLASK_ORIGIN}/"}
        assert len(store) == 0
        assert session_cookie(browser) == {}
        assert browser.get("/").get_json() == {"user": None}
        assert browser.get("/profile").status_code == 302
        # The provider accepts the request as is: no confirmation, straight back to the app.
        back = alice.http.get(location)
        assert back.status_code in (302, 303) and back.headers["location"] == f"{FLASK_ORIGIN}/"
        # Logging out again, without a session, just goes home.
        again = browser.get("/logout")
        assert again.status_code == 303 and again.headers["Location"] == f"{FLASK_ORIGIN}/"
    finally:
        oidc.close()


def test_a_session_ended_server_side_is_logged_out(bastion: LiveBastion, alice: ProviderUser) -> None:
    now = [0.0]
    store = MemoryStore(clock=lambda: now[0])
    app, oidc = make_app(bastion, store=store)
    app.permanent_session_lifetime = 3600
    browser = app.test_client()
    try:
        log_in(browser, alice)
        assert browser.get("/profile").status_code == 200
        now[0] += 3601
        assert browser.get("/profile").status_code == 302
        assert USER not in session_cookie(browser)
    finally:
        oidc.close()


def test_tokens_are_refreshed_and_the_refresh_token_revoked_at_logout(bastion: LiveBastion,
                                                                       alice: ProviderUser) -> None:
    app, oidc = make_app(bastion, scope="openid profile email offline_access")
    browser = app.test_client()
    try:
        log_in(browser, alice)  # asks consent again: offline_access is new
        before = browser.get("/tokens").get_json()
        assert before["refresh_token"]
        after = browser.get("/refresh").get_json()
        assert after["access_token"] != before["access_token"]
        assert browser.get("/tokens").get_json()["access_token"] == after["access_token"]
        browser.post("/logout")
        with Client(bastion.issuer, bastion.client_id, bastion.client_secret) as client, \
                pytest.raises(RefreshTokenRevoked):
            client.refresh(after["refresh_token"])
    finally:
        oidc.close()


def test_form_post_callback(bastion: LiveBastion, alice: ProviderUser) -> None:
    app, oidc = make_app(bastion, response_mode="form_post")
    browser = app.test_client()
    try:
        start = browser.get("/login?next=/profile")
        assert query(start.headers["Location"])["response_mode"] == "form_post"
        page = alice.authorize(start.headers["Location"])
        assert page.status_code == 200
        fields = hidden_inputs(page.text)
        assert set(fields) >= {"code", "state", "iss"}
        done = browser.post("/callback", data=fields)
        assert done.status_code == 303 and done.headers["Location"] == "/profile"
        assert browser.get("/profile").get_json()["email"] == "alice@example.com"
    finally:
        oidc.close()


def test_an_unreachable_provider_is_a_page_not_a_500(free_port_url: str) -> None:
    app = Flask(__name__)
    app.secret_key = "k" * 32
    app.config["TESTING"] = True
    oidc = OIDCLogin(app, issuer=free_port_url, client_id="webapp", client_secret="s" * 40)
    try:
        response = app.test_client().get("/login")
        assert response.status_code == 502
        assert "could not be reached" in response.get_data(as_text=True)
    finally:
        oidc.close()


def test_url_prefix_and_defaults(bastion: LiveBastion) -> None:
    app = Flask(__name__)
    app.secret_key = "k" * 32
    app.config.update(SERVER_NAME="127.0.0.1:5000", TESTING=True)
    oidc = OIDCLogin(app, issuer=bastion.issuer, client_id="webapp", client_secret=bastion.client_secret,
                     url_prefix="/auth")
    try:
        response = app.test_client().get("/auth/login")
        assert query(response.headers["Location"])["redirect_uri"] == "http://127.0.0.1:5000/auth/callback"
        assert app.test_client().get("/login").status_code == 404
    finally:
        oidc.close()
