"""The synchronous `bastion.client.Client` against a real `bastion serve` over TCP, set up by the CLI.

One server for the module (tests/live_server.py), with a one-second device-code interval, a one-second
key-refresh interval (so that `bastion keys rotate` reaches it at once) and no refresh-token reuse
grace (so that any reuse revokes the family). The user's browser is a plain `httpx.Client` answering
the provider's pages.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from bastion.client import (
    AccessDenied,
    Client,
    InvalidClient,
    InvalidToken,
    IssuerMismatch,
    LoginRequired,
    RefreshTokenRevoked,
    TokenSet,
)
from bastion.client.id_token import at_hash
from bastion.resource import TokenValidator
from tests.live_server import LiveServer, live_server
from tests.web.flow import hidden, query

S = "live-secret-" + "z" * 40
API = "https://api.example/live"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
BYE = "http://127.0.0.1:9/bye"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with ExitStack() as stack:
        with pytest.MonkeyPatch.context() as env:  # read once, by the server's environment
            env.setenv("BASTION_DEVICE_CODE_INTERVAL", "1")
            env.setenv("BASTION_KEY_REFRESH_INTERVAL", "1")
            env.setenv("BASTION_REFRESH_TOKEN_REUSE_GRACE", "0")
            server = stack.enter_context(live_server(tmp_path_factory.mktemp("bastion-client-live")))
        server.cli("clients", "create", "--client-id", "rp", "--secret", S, "--redirect-uri", server.redirect_uri,
                   "--post-logout-redirect-uri", BYE, "--grant-type", "authorization_code",
                   "--grant-type", "refresh_token", "--scope", "openid profile email offline_access", "--name", "RP")
        server.cli("clients", "create", "--client-id", "svc", "--secret", S, "--grant-type", "client_credentials",
                   "--scope", "api:read api:write", "--resource", API, "--name", "Service")
        server.cli("clients", "create", "--client-id", "tv", "--public", "--grant-type", DEVICE_GRANT,
                   "--name", "Living Room TV")
        yield server


@dataclass
class Clock:
    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Counter:
    """An httpx event hook counting the requests that reach each path, from any thread."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> None:
        with self.lock:
            self.paths.append(request.url.path)

    def count(self, path: str) -> int:
        with self.lock:
            return self.paths.count(path)


def kid(jwt: str) -> str:
    header = jwt.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


def browse(live: LiveServer, browser: httpx.Client, url: str, *, decision: str = "allow") -> str:
    """The user's side of a login: follow the provider's redirects, sign in and answer consent when
    asked; the first URL outside the provider the browser is sent to (the relying party's callback)."""
    issuer = urlsplit(live.issuer).netloc
    response = browser.get(url)
    for _ in range(10):
        if response.status_code in (302, 303):
            location = urljoin(str(response.url), response.headers["location"])
            if urlsplit(location).netloc != issuer:
                return location
            response = browser.get(location)
        elif 'name="password"' in response.text:
            action = re.search(r'action="(/interaction/[^"]+/login)"', response.text)
            assert action, response.text[:300]
            response = browser.post(urljoin(live.issuer, action.group(1)), data={
                "username": live.username, "password": live.password,
                "csrf_token": hidden(response.text, "csrf_token")})
        elif 'value="allow"' in response.text:
            action = re.search(r'action="(/interaction/[^"]+/consent)"', response.text)
            assert action, response.text[:300]
            response = browser.post(urljoin(live.issuer, action.group(1)), data={
                "decision": decision, "csrf_token": hidden(response.text, "csrf_token")})
        else:
            raise AssertionError((response.status_code, response.text[:300]))
    raise AssertionError("too many steps")


def log_in(live: LiveServer, rp: Client, scope: str = "openid profile email offline_access") -> TokenSet:
    with httpx.Client() as browser:
        request = rp.start_authorization(scope)
        return rp.finish_authorization(request, browse(live, browser, request.url))


def relying_party(live: LiveServer, **kwargs: object) -> Client:
    return Client(live.issuer, "rp", S, redirect_uri=live.redirect_uri, **kwargs)  # type: ignore[arg-type]


def test_code_flow_userinfo_and_refresh(live: LiveServer) -> None:
    with relying_party(live) as rp, httpx.Client() as browser:
        request = rp.start_authorization("openid profile email offline_access")
        callback = browse(live, browser, request.url)
        assert callback.startswith(live.redirect_uri + "?") and query(callback)["iss"] == live.issuer
        with pytest.raises(IssuerMismatch):
            rp.finish_authorization(request, callback.replace("iss=", "iss=x"))
        tokens = rp.finish_authorization(request, callback)
        assert tokens.claims is not None and tokens.claims["nonce"] == request.nonce
        assert tokens.claims["aud"] == "rp" and tokens.claims["iss"] == live.issuer
        assert tokens.claims["at_hash"] == at_hash(tokens.access_token, "RS256")
        info = rp.userinfo(tokens)
        assert info["sub"] == tokens.subject and info["email"] == "alice@example.com"
        assert info["name"] == "Alice Liddell"

        refreshed = rp.refresh(tokens)
        assert refreshed.refresh_token not in (None, tokens.refresh_token)
        assert refreshed.subject == tokens.subject and refreshed.access_token != tokens.access_token
        assert rp.userinfo(refreshed)["sub"] == tokens.subject
        # Reuse of the spent refresh token: this server has no grace, so the whole family ends.
        with pytest.raises(RefreshTokenRevoked):
            rp.refresh(tokens)
        with pytest.raises(RefreshTokenRevoked):
            rp.refresh(refreshed)
        with pytest.raises(InvalidToken):
            rp.userinfo(refreshed)


def test_prompt_none_and_denial(live: LiveServer) -> None:
    with relying_party(live) as rp, httpx.Client() as browser:
        request = rp.start_authorization("openid", prompt="none")
        with pytest.raises(LoginRequired):
            rp.finish_authorization(request, browse(live, browser, request.url))
    # A client the user never consented to (the other tests' consent to "rp" is remembered).
    with Client(live.issuer, live.client_id, live.client_secret, redirect_uri=live.redirect_uri) as other, \
            httpx.Client() as browser:
        request = other.start_authorization("openid phone")
        with pytest.raises(AccessDenied):
            other.finish_authorization(request, browse(live, browser, request.url, decision="deny"))


def test_introspection_and_revocation(live: LiveServer) -> None:
    with relying_party(live) as rp:
        tokens = log_in(live, rp)
        assert tokens.refresh_token is not None
        info = rp.introspect(tokens.access_token)
        assert info["active"] is True and info["sub"] == tokens.subject and info["client_id"] == "rp"
        assert info["username"] == live.username and info["aud"] == live.issuer
        assert rp.introspect(tokens.refresh_token, token_type_hint="refresh_token")["active"] is True
        assert rp.introspect("garbage") == {"active": False}

        rp.revoke(tokens.access_token)
        assert rp.introspect(tokens.access_token) == {"active": False}
        with pytest.raises(InvalidToken):
            rp.userinfo(tokens)
        assert rp.refresh(tokens).subject == tokens.subject  # revoking an access token leaves the grant

        again = log_in(live, rp)
        assert again.refresh_token is not None
        rp.revoke(again.refresh_token, token_type_hint="refresh_token")
        with pytest.raises(RefreshTokenRevoked):
            rp.refresh(again)
        assert rp.introspect(again.access_token) == {"active": False}  # the grant went with it


def test_client_credentials_from_a_hundred_threads_is_one_request(live: LiveServer) -> None:
    counter = Counter()
    with httpx.Client(event_hooks={"request": [counter]}) as http, \
            Client(live.issuer, "svc", S, http=http) as svc:
        barrier = threading.Barrier(100)

        def token(_: int) -> TokenSet:
            barrier.wait()
            return svc.client_credentials("api:read")

        with ThreadPoolExecutor(max_workers=100) as pool:
            results = list(pool.map(token, range(100)))
        assert all(r is results[0] for r in results) and results[0].scope == "api:read"
        assert counter.count("/token") == 1

        for_api = svc.client_credentials("api:read", resource=API)
        assert for_api.access_token != results[0].access_token and counter.count("/token") == 2
        validated = TokenValidator(live.issuer, API, sync_http=http).validate_sync(for_api.access_token)
        assert validated.subject == "svc" and validated.scopes == {"api:read"}
        assert svc.introspect(for_api.access_token)["aud"] == API
        wrong = Client(live.issuer, "svc", "w" * 40, http=http)  # closing it would leave `http` open anyway
        with pytest.raises(InvalidClient):
            wrong.client_credentials()


def test_device_flow(live: LiveServer) -> None:
    answered = threading.Event()

    def pending(response: httpx.Response) -> None:
        if response.request.url.path == "/token" and response.status_code == 400:
            answered.set()

    with httpx.Client(event_hooks={"response": [pending]}) as http, Client(live.issuer, "tv", http=http) as tv, \
            httpx.Client() as browser, ThreadPoolExecutor(max_workers=1) as pool:
        device = tv.device_authorization("openid profile")
        assert device.interval == 1 and device.verification_uri_complete is not None
        polling = pool.submit(tv.poll_device_token, device)
        assert answered.wait(10)  # the first poll: authorization_pending
        page = browser.get(device.verification_uri_complete)
        step = browser.post(f"{live.issuer}/device", data={
            "user_code": device.user_code, "csrf_token": hidden(page.text, "csrf_token")})
        step = browser.post(f"{live.issuer}/device", data={
            "user_code": device.user_code, "username": live.username, "password": live.password,
            "csrf_token": hidden(step.text, "csrf_token")})
        assert "Living Room TV" in step.text
        decided = browser.post(f"{live.issuer}/device", data={
            "user_code": device.user_code, "decision": "allow", "csrf_token": hidden(step.text, "csrf_token")})
        assert decided.status_code == 303
        tokens = polling.result(timeout=10)
    assert tokens.claims is not None and tokens.claims["aud"] == "tv" and isinstance(tokens.subject, str)


def test_end_session(live: LiveServer) -> None:
    with relying_party(live) as rp, httpx.Client() as browser:
        request = rp.start_authorization("openid")
        tokens = rp.finish_authorization(request, browse(live, browser, request.url))
        response = browser.get(rp.end_session_url(tokens, post_logout_redirect_uri=BYE, state="bye-1"))
        assert response.status_code == 303 and response.headers["location"] == f"{BYE}?state=bye-1"
        request = rp.start_authorization("openid", prompt="none")
        with pytest.raises(LoginRequired):
            rp.finish_authorization(request, browse(live, browser, request.url))


def test_key_rotation_reaches_the_same_client(live: LiveServer) -> None:
    counter = Counter()
    clock = Clock()
    with httpx.Client(event_hooks={"request": [counter]}) as http, relying_party(live, http=http, clock=clock) as rp:
        before = log_in(live, rp, "openid")
        assert before.id_token is not None and counter.count("/jwks") == 1
        published = {k["kid"] for k in httpx.get(f"{live.issuer}/jwks").json()["keys"]}
        live.cli("keys", "rotate")
        deadline = time.monotonic() + 10
        while {k["kid"] for k in httpx.get(f"{live.issuer}/jwks").json()["keys"]} == published:
            assert time.monotonic() < deadline, "the server did not pick up the rotated keys"
            time.sleep(0.2)
        clock.offset = 120  # the next login, two minutes later (the cached JWKS is not stale yet)
        after = log_in(live, rp, "openid")
        assert after.id_token is not None and kid(after.id_token) not in published
        assert after.subject == before.subject and counter.count("/jwks") == 2  # one refetch
        log_in(live, rp, "openid")
        assert counter.count("/jwks") == 2
