"""`bastion.client` against Bastion itself, in process: every flow a relying party runs, end to end.

The relying party (`AsyncClient`) reaches the provider's ASGI app through a transport that records
every request, so that "no request was made" is observed, not assumed. The user's browser is a
separate httpx client (the `flow` fixture) answering the login, consent, device and logout pages over
HTTP. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from bastion.client import (
    AccessDenied,
    AsyncClient,
    AuthorizationRequest,
    ExpiredToken,
    InvalidClient,
    InvalidGrant,
    InvalidIDToken,
    InvalidToken,
    IssuerMismatch,
    LoginRequired,
    RefreshTokenRevoked,
    StateMismatch,
    TokenSet,
)
from bastion.client.id_token import at_hash
from bastion.core.keyring import refresh_keys, rotate_keys
from bastion.core.models import Client
from bastion.core.provider import Provider
from bastion.core.secrets import hash_secret
from bastion.resource import InvalidToken as ResourceInvalidToken
from bastion.resource import TokenValidator
from bastion.web.app import create_app
from tests.conftest import ISSUER, SECRET, on_both_backends
from tests.web.flow import APP_REDIRECT, Flow, hidden, query

pytestmark = on_both_backends

S = "c" * 40
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
NATIVE_REDIRECT = "http://127.0.0.1/callback"
API_A, API_B = "https://api.example/a", "https://api.example/b"


# --- the relying party's HTTP, recorded ---------------------------------------------------------


class Recorder(httpx.AsyncBaseTransport):
    """The provider's ASGI app as a transport that notes each request's path and answer's status."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[str] = []
        self.answered: list[tuple[str, int]] = []
        self.latency: dict[str, float] = {}  # path -> seconds the network takes to answer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.url.path)
        response = await self.inner.handle_async_request(request)
        await asyncio.sleep(self.latency.get(request.url.path, 0))
        self.answered.append((request.url.path, response.status_code))
        return response

    def count(self, path: str) -> int:
        return self.sent.count(path)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Clock:
    """The relying party's clock, `offset` seconds ahead of real time."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
async def clients(provider: Provider) -> None:
    now = provider.now()
    for client in (
        Client(client_id="post-app", client_name="Posting App", redirect_uris=(APP_REDIRECT,),
               token_endpoint_auth_method="client_secret_post", secret_hash=hash_secret(S), created_at=now),
        Client(client_id="rt-app", client_name="Refreshing App", redirect_uris=(APP_REDIRECT,),
               secret_hash=hash_secret(S), grant_types=("authorization_code", "refresh_token"), resources=(API_A,),
               created_at=now),
        *(Client(client_id=f"app-{alg}", client_name=f"{alg} App", redirect_uris=(APP_REDIRECT,),
                 secret_hash=hash_secret(S), grant_types=("authorization_code", "refresh_token"),
                 id_token_signed_response_alg=alg, created_at=now) for alg in ("ES256", "EdDSA")),
        Client(client_id="svc", client_name="Billing Service", redirect_uris=(), secret_hash=hash_secret(S),
               grant_types=("client_credentials",), scope=("api:read", "api:write"), resources=(API_A, API_B),
               created_at=now),
        Client(client_id="tv", client_name="Living Room TV", redirect_uris=(), token_endpoint_auth_method="none",
               application_type="native", grant_types=(DEVICE_GRANT,), created_at=now),
    ):
        await provider.store.create_client(client)


@pytest.fixture
def recorder(provider: Provider) -> Recorder:
    return Recorder(httpx.ASGITransport(app=create_app(provider=provider)))


@pytest.fixture
async def rp_http(recorder: Recorder, clients: None) -> AsyncIterator[httpx.AsyncClient]:
    """The relying party's own HTTP client: no cookies shared with the user's browser."""
    async with httpx.AsyncClient(transport=recorder) as client:
        yield client


def relying_party(http: httpx.AsyncClient, client_id: str = "app", secret: str | None = SECRET,
                  **kwargs: Any) -> AsyncClient:
    kwargs.setdefault("redirect_uri", APP_REDIRECT)
    return AsyncClient(ISSUER, client_id, secret, http=http, **kwargs)


def advance(provider: Provider, seconds: float) -> None:
    real_now = provider.clock
    provider.clock = lambda: real_now() + timedelta(seconds=seconds)


def kid(jwt: str) -> str:
    header = jwt.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


def with_params(url: str, **changes: str | None) -> str:
    """`url` with query parameters replaced (or removed, for None): a tampered callback."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return urlunsplit(parts._replace(query=urlencode(params)))


# --- the user's side, over HTTP -----------------------------------------------------------------


async def sign_in(flow: Flow, url: str, *, login: bool = True, consent: str | None = "allow") -> str:
    """Open the login URL the relying party made, sign in and answer the consent page as asked;
    the URL the provider finally redirects the browser to (the relying party's callback)."""
    response = await answer_pages(flow, url, login=login, consent=consent)
    assert response.status_code == 303, (response.status_code, response.text[:300])
    return response.headers["location"]


async def answer_pages(flow: Flow, url: str, *, login: bool = True, consent: str | None = "allow") -> httpx.Response:
    """The provider's last answer to the browser after the user signed in and decided."""
    response = await flow.http.get(url)
    if login or consent:
        page = await flow.follow(response)
        if login:
            response = await flow.login(page)
            if consent:
                page = await flow.follow(response)
        if consent:
            response = await flow.consent(page, consent)
        if response.headers.get("location", "").startswith("/interaction/"):
            response = await flow.http.get(response.headers["location"])
    return response


async def log_in(rp: AsyncClient, flow: Flow, scope: str = "openid profile email", *, login: bool = True,
                 consent: str | None = "allow", **kwargs: Any) -> TokenSet:
    request = await rp.start_authorization(scope, **kwargs)
    return await rp.finish_authorization(request, await sign_in(flow, request.url, login=login, consent=consent))


async def approve_device(http: httpx.AsyncClient, verification_uri_complete: str, decision: str = "allow") -> str:
    """The user enters the device's code on /device (prefilled from the complete URI), signs in, decides."""
    page = await http.get(verification_uri_complete)
    user_code = query(verification_uri_complete)["user_code"]
    assert f'value="{user_code}"' in page.text
    step = await http.post("/device", data={"user_code": user_code, "csrf_token": hidden(page.text, "csrf_token")})
    if 'name="password"' in step.text:
        step = await http.post("/device", data={"user_code": user_code, "username": "alice",
                                                "password": "correct horse battery",
                                                "csrf_token": hidden(step.text, "csrf_token")})
    assert "Living Room TV" in step.text and 'value="allow"' in step.text, step.text[:400]
    decided = await http.post("/device", data={"user_code": user_code, "decision": decision,
                                               "csrf_token": hidden(step.text, "csrf_token")})
    assert decided.status_code == 303 and decided.headers["location"].startswith("/device/done")
    return (await http.get(decided.headers["location"])).text


# --- authorization code flow --------------------------------------------------------------------


async def test_code_flow_gives_a_validated_id_token_and_userinfo(
        flow: Flow, rp_http: httpx.AsyncClient, recorder: Recorder) -> None:
    async with relying_party(rp_http) as rp:
        request = await rp.start_authorization("openid profile email")
        sent = query(request.url)
        assert sent["code_challenge_method"] == "S256" and request.code_verifier not in request.url
        assert sent["nonce"] == request.nonce and sent["state"] == request.state
        callback = await sign_in(flow, request.url)
        assert callback.startswith(APP_REDIRECT + "?") and query(callback)["iss"] == ISSUER
        tokens = await rp.finish_authorization(request, callback)

        assert tokens.claims is not None and tokens.subject == "user-alice"
        assert tokens.claims["aud"] == "app" and tokens.claims["iss"] == ISSUER
        assert tokens.claims["nonce"] == request.nonce
        assert tokens.claims["at_hash"] == at_hash(tokens.access_token, "RS256")
        assert tokens.scopes == {"openid", "profile", "email"} and tokens.token_type == "Bearer"
        assert tokens.refresh_token is None  # "app" may not use the refresh_token grant
        assert tokens.expires_at is not None and 500 < tokens.expires_at - time.time() <= 600

        info = await rp.userinfo(tokens)
        assert info["sub"] == "user-alice" and info["name"] == "Alice Liddell"
        assert info["email"] == "alice@example.com" and "phone_number" not in info  # phone was not asked for
    assert recorder.count("/token") == 1 and recorder.count("/.well-known/openid-configuration") == 1


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
async def test_id_tokens_signed_with_other_algorithms(flow: Flow, rp_http: httpx.AsyncClient, alg: str) -> None:
    async with relying_party(rp_http, f"app-{alg}", S) as rp:
        tokens = await log_in(rp, flow, "openid offline_access")
        assert tokens.id_token is not None and tokens.claims is not None
        header = json.loads(base64.urlsafe_b64decode(tokens.id_token.split(".")[0] + "=="))
        assert header["alg"] == alg and tokens.subject == "user-alice"
        assert tokens.claims["at_hash"] == at_hash(tokens.access_token, alg)  # SHA-512 for EdDSA
        refreshed = await rp.refresh(tokens)
        assert refreshed.id_token != tokens.id_token and refreshed.subject == "user-alice"


async def test_form_post_response_mode(flow: Flow, rp_http: httpx.AsyncClient) -> None:
    async with relying_party(rp_http) as rp:
        request = await rp.start_authorization("openid", response_mode="form_post")
        page = await answer_pages(flow, request.url)
        assert page.status_code == 200 and f'action="{APP_REDIRECT}"' in page.text
        form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
        assert {"code", "state", "iss"} <= set(form)
        assert (await rp.finish_authorization(request, form)).subject == "user-alice"


async def test_a_stored_authorization_request_finishes_the_login(flow: Flow, rp_http: httpx.AsyncClient) -> None:
    """What a web app does: keep the request in its session store as JSON, finish in another process."""
    async with relying_party(rp_http) as rp:
        request = await rp.start_authorization("openid", max_age=600)
        stored = json.dumps(request.to_dict())
        callback = await sign_in(flow, request.url)
    async with relying_party(rp_http) as other:
        tokens = await other.finish_authorization(AuthorizationRequest.from_dict(json.loads(stored)), callback)
        assert tokens.subject == "user-alice"


async def test_resource_indicators_reach_the_access_token(
        flow: Flow, rp_http: httpx.AsyncClient, provider: Provider) -> None:
    api_a = TokenValidator(ISSUER, API_A, http=rp_http)
    async with relying_party(rp_http, "rt-app", S) as rp:
        tokens = await log_in(rp, flow, "openid offline_access", resource=API_A)
        assert (await api_a.validate(tokens.access_token)).subject == "user-alice"
        refreshed = await rp.refresh(tokens, resource=API_A)
        assert (await api_a.validate(refreshed.access_token)).client_id == "rt-app"
        narrowed = await rp.refresh(refreshed, scope="openid")
        assert narrowed.scope == "openid" and narrowed.refresh_token is not None


async def test_max_age_makes_auth_time_checked(flow: Flow, rp_http: httpx.AsyncClient) -> None:
    clock = Clock()
    async with relying_party(rp_http, clock=clock) as rp:
        tokens = await log_in(rp, flow, max_age=300)
        assert tokens.claims is not None and abs(tokens.claims["auth_time"] - time.time()) < 60

        # Seen from a relying party whose clock says the login was 1000 s ago, max_age=300 is not met.
        clock.offset = 1000
        request = await rp.start_authorization("openid", max_age=300)
        callback = await sign_in(flow, request.url, login=False, consent=None)  # session and consent exist
        with pytest.raises(InvalidIDToken, match="max_age"):
            await rp.finish_authorization(request, callback)


async def test_public_native_client_logs_in_with_pkce_only(
        flow: Flow, rp_http: httpx.AsyncClient, recorder: Recorder) -> None:
    async with relying_party(rp_http, "native", None, redirect_uri=NATIVE_REDIRECT) as rp:
        assert rp.authentication.method == "none"
        request = await rp.start_authorization("openid profile")
        callback = await sign_in(flow, request.url)
        assert callback.startswith(NATIVE_REDIRECT + "?")
        tokens = await rp.finish_authorization(request, callback)
        assert tokens.subject == "user-alice" and tokens.claims is not None and tokens.claims["aud"] == "native"
        assert (await rp.userinfo(tokens))["given_name"] == "Alice"


async def test_tampered_callbacks_are_refused_before_the_code_is_redeemed(
        flow: Flow, rp_http: httpx.AsyncClient, recorder: Recorder) -> None:
    async with relying_party(rp_http) as rp:
        request = await rp.start_authorization("openid")
        callback = await sign_in(flow, request.url)
        with pytest.raises(IssuerMismatch):
            await rp.finish_authorization(request, with_params(callback, iss="https://evil.example"))
        with pytest.raises(IssuerMismatch):  # Bastion advertises RFC 9207, so a missing iss is a mix-up too
            await rp.finish_authorization(request, with_params(callback, iss=None))
        with pytest.raises(StateMismatch):
            await rp.finish_authorization(request, with_params(callback, state="forged"))
        with pytest.raises(StateMismatch):  # another login's request
            await rp.finish_authorization(await rp.start_authorization("openid"), callback)
        assert recorder.count("/token") == 0
        # The code was never sent anywhere: the genuine callback still works.
        assert (await rp.finish_authorization(request, callback)).subject == "user-alice"


async def test_prompt_none_without_a_session_is_login_required(
        flow: Flow, rp_http: httpx.AsyncClient, recorder: Recorder) -> None:
    async with relying_party(rp_http) as rp:
        request = await rp.start_authorization("openid", prompt="none")
        callback = await sign_in(flow, request.url, login=False, consent=None)
        with pytest.raises(LoginRequired) as caught:
            await rp.finish_authorization(request, callback)
        assert caught.value.error == "login_required"
    assert recorder.count("/token") == 0


async def test_denied_consent_is_access_denied(flow: Flow, rp_http: httpx.AsyncClient) -> None:
    async with relying_party(rp_http) as rp:
        request = await rp.start_authorization("openid profile")
        callback = await sign_in(flow, request.url, consent="deny")
        with pytest.raises(AccessDenied):
            await rp.finish_authorization(request, callback)


async def test_a_replayed_code_is_invalid_grant_and_kills_the_first_tokens(
        flow: Flow, rp_http: httpx.AsyncClient) -> None:
    async with relying_party(rp_http) as rp:
        request = await rp.start_authorization("openid profile")
        callback = await sign_in(flow, request.url)
        tokens = await rp.finish_authorization(request, callback)
        with pytest.raises(InvalidGrant):
            await rp.finish_authorization(request, callback)
        with pytest.raises(InvalidToken):  # RFC 9700 §4.2.4: what the first redemption got is revoked
            await rp.userinfo(tokens)


async def test_client_secret_post(flow: Flow, rp_http: httpx.AsyncClient) -> None:
    async with relying_party(rp_http, "post-app", S, auth_method="client_secret_post") as rp, \
            relying_party(rp_http, "post-app", "w" * 40, auth_method="client_secret_post") as wrong, \
            relying_party(rp_http, "post-app", S) as basic:
        request = await rp.start_authorization("openid email")
        callback = await sign_in(flow, request.url)
        with pytest.raises(InvalidClient):
            await wrong.finish_authorization(request, callback)
        with pytest.raises(InvalidClient):  # the registered method is the only one Bastion accepts
            await basic.finish_authorization(request, callback)
        tokens = await rp.finish_authorization(request, callback)  # failed authentications spent nothing
        assert tokens.subject == "user-alice" and (await rp.userinfo(tokens))["email"] == "alice@example.com"


# --- refresh ------------------------------------------------------------------------------------


async def test_refresh_rotates_the_refresh_token_and_keeps_the_user(
        flow: Flow, rp_http: httpx.AsyncClient) -> None:
    async with relying_party(rp_http, "rt-app", S) as rp:
        first = await log_in(rp, flow, "openid profile offline_access")
        assert first.refresh_token is not None
        second = await rp.refresh(first)
        assert second.refresh_token is not None and second.refresh_token != first.refresh_token
        assert second.access_token != first.access_token and second.id_token != first.id_token
        assert second.subject == first.subject == "user-alice" and second.claims is not None
        assert second.claims["auth_time"] == first.claims["auth_time"]  # type: ignore[index]
        assert second.scopes == {"openid", "profile", "offline_access"}
        assert (await rp.userinfo(second))["name"] == "Alice Liddell"
        third = await rp.refresh(second.refresh_token)  # a bare refresh token works too
        assert third.refresh_token not in (None, second.refresh_token)


async def test_reuse_within_the_grace_fails_but_the_family_lives(
        flow: Flow, rp_http: httpx.AsyncClient, provider: Provider) -> None:
    assert provider.settings.refresh_token_reuse_grace == 2
    async with relying_party(rp_http, "rt-app", S) as rp:
        first = await log_in(rp, flow, "openid offline_access")
        second = await rp.refresh(first)
        with pytest.raises(RefreshTokenRevoked):  # a parallel retry of the same token
            await rp.refresh(first)
        assert (await rp.refresh(second)).subject == "user-alice"


async def test_reuse_after_the_grace_revokes_the_whole_family(
        flow: Flow, rp_http: httpx.AsyncClient, provider: Provider) -> None:
    async with relying_party(rp_http, "rt-app", S) as rp:
        first = await log_in(rp, flow, "openid offline_access")
        second = await rp.refresh(first)
        advance(provider, provider.settings.refresh_token_reuse_grace + 3)
        with pytest.raises(RefreshTokenRevoked):  # someone else holds the old token: reuse detected
            await rp.refresh(first)
        with pytest.raises(RefreshTokenRevoked):
            await rp.refresh(second)
        with pytest.raises(InvalidToken):
            await rp.userinfo(second)


async def test_a_revoked_refresh_token_cannot_refresh(flow: Flow, rp_http: httpx.AsyncClient) -> None:
    async with relying_party(rp_http, "rt-app", S) as rp:
        tokens = await log_in(rp, flow, "openid offline_access")
        assert tokens.refresh_token is not None
        await rp.revoke(tokens.refresh_token)
        with pytest.raises(RefreshTokenRevoked):
            await rp.refresh(tokens)
        assert (await rp.introspect(tokens.access_token)) == {"active": False}  # the whole grant ended


# --- client credentials -------------------------------------------------------------------------


async def test_client_credentials_are_cached(rp_http: httpx.AsyncClient, recorder: Recorder) -> None:
    async with relying_party(rp_http, "svc", S, redirect_uri=None) as rp:
        tokens = await rp.client_credentials()
        assert tokens.scopes == {"api:read", "api:write"} and tokens.refresh_token is None and tokens.claims is None
        assert await rp.client_credentials() is tokens
        assert recorder.count("/token") == 1
        explicit = await rp.client_credentials("api:write api:read")
        assert await rp.client_credentials("api:read  api:write api:read") is explicit  # order, repeats: one key
    assert recorder.count("/token") == 2  # no scope and an explicit scope are two keys


async def test_a_hundred_concurrent_tasks_cause_one_token_request(
        rp_http: httpx.AsyncClient, recorder: Recorder) -> None:
    async with relying_party(rp_http, "svc", S, redirect_uri=None) as rp:
        results = await asyncio.gather(*(rp.client_credentials("api:read") for _ in range(100)))
        assert all(r is results[0] for r in results) and results[0].scope == "api:read"
    assert recorder.count("/token") == 1


async def test_each_scope_and_resource_has_its_own_token(
        rp_http: httpx.AsyncClient, recorder: Recorder) -> None:
    async with relying_party(rp_http, "svc", S, redirect_uri=None) as rp:
        read = await rp.client_credentials("api:read")
        write = await rp.client_credentials("api:write")
        for_a = await rp.client_credentials("api:read", resource=API_A)
        for_b = await rp.client_credentials("api:read", resource=[API_B])
        assert len({t.access_token for t in (read, write, for_a, for_b)}) == 4
        assert await rp.client_credentials("api:read", resource=API_A) is for_a
        assert await rp.client_credentials("api:read") is read
        assert recorder.count("/token") == 4
        # The resource's own API accepts its token, the other API does not.
        api_a = TokenValidator(ISSUER, API_A, http=rp_http)
        assert (await api_a.validate(for_a.access_token)).client_id == "svc"
        with pytest.raises(ResourceInvalidToken, match="audience"):
            await api_a.validate(for_b.access_token)


async def test_a_token_close_to_expiry_is_renewed(rp_http: httpx.AsyncClient, recorder: Recorder) -> None:
    clock = Clock()
    async with relying_party(rp_http, "svc", S, redirect_uri=None, clock=clock) as rp:
        first = await rp.client_credentials()
        assert first.expires_at is not None and round(first.expires_at - time.time()) == 600
        clock.offset = 530  # 70 s left: still handed out
        assert await rp.client_credentials() is first
        clock.offset = 545  # 55 s left: too little for a request to reach an API safely
        second = await rp.client_credentials()
        assert second is not first and second.access_token != first.access_token
        assert await rp.client_credentials() is second
    assert recorder.count("/token") == 2


# --- device flow (RFC 8628) ---------------------------------------------------------------------


@pytest.fixture
def fast_device(provider: Provider) -> None:
    provider.settings.device_code_interval = 1  # BASTION_DEVICE_CODE_INTERVAL=1


async def test_device_flow_polls_until_the_user_approves(
        flow: Flow, rp_http: httpx.AsyncClient, recorder: Recorder, fast_device: None) -> None:
    async with relying_party(rp_http, "tv", None, redirect_uri=None) as rp:
        device = await rp.device_authorization("openid profile")
        assert device.interval == 1 and device.verification_uri == f"{ISSUER}/device"
        assert re.fullmatch(r"[A-Z]{4}-[A-Z]{4}", device.user_code)
        assert device.verification_uri_complete is not None
        polling = asyncio.create_task(rp.poll_device_token(device))
        while ("/token", 400) not in recorder.answered:  # the first poll: authorization_pending
            assert not polling.done()
            await asyncio.sleep(0.02)
        assert "Device connected" in await approve_device(flow.http, device.verification_uri_complete)
        tokens = await asyncio.wait_for(polling, 10)
    assert tokens.subject == "user-alice" and tokens.claims is not None and tokens.claims["aud"] == "tv"
    assert tokens.claims["at_hash"] == at_hash(tokens.access_token, "RS256")
    assert recorder.answered.count(("/token", 200)) == 1 and recorder.count("/token") == 2


async def test_device_flow_denied(flow: Flow, rp_http: httpx.AsyncClient, fast_device: None) -> None:
    async with relying_party(rp_http, "tv", None, redirect_uri=None) as rp:
        device = await rp.device_authorization("openid")
        assert device.verification_uri_complete is not None
        assert "denied" in await approve_device(flow.http, device.verification_uri_complete, "deny")
        with pytest.raises(AccessDenied):
            await rp.poll_device_token(device)


async def test_device_flow_expired(rp_http: httpx.AsyncClient, recorder: Recorder, provider: Provider,
                                   fast_device: None) -> None:
    clock = Clock()
    async with relying_party(rp_http, "tv", None, redirect_uri=None, clock=clock) as rp:
        # The provider says the code expired (its clock is past the 600 s lifetime).
        device = await rp.device_authorization("openid")
        advance(provider, provider.settings.device_code_ttl + 1)
        with pytest.raises(ExpiredToken):
            await rp.poll_device_token(device)
        assert recorder.count("/token") == 1
        # The client knows it too, without asking.
        device = await rp.device_authorization("openid")
        clock.offset = device.expires_at - time.time()
        with pytest.raises(ExpiredToken):
            await rp.poll_device_token(device)
        assert recorder.count("/token") == 1


# --- introspection, revocation, logout ----------------------------------------------------------


async def test_introspection_and_revocation(flow: Flow, rp_http: httpx.AsyncClient) -> None:
    async with relying_party(rp_http) as rp:
        tokens = await log_in(rp, flow, "openid profile")
        info = await rp.introspect(tokens.access_token)
        assert info["active"] is True and info["sub"] == "user-alice" and info["client_id"] == "app"
        assert info["aud"] == ISSUER and info["username"] == "alice" and info["iss"] == ISSUER
        await rp.revoke(tokens.access_token, token_type_hint="access_token")
        assert await rp.introspect(tokens.access_token) == {"active": False}
        with pytest.raises(InvalidToken):
            await rp.userinfo(tokens)
        assert await rp.introspect("garbage") == {"active": False}
        await rp.revoke("garbage")  # RFC 7009: unknown tokens are "revoked" too


async def test_end_session_returns_to_the_registered_uri_with_state(
        flow: Flow, rp_http: httpx.AsyncClient) -> None:
    async with relying_party(rp_http) as rp:
        tokens = await log_in(rp, flow, "openid")
        url = await rp.end_session_url(tokens, post_logout_redirect_uri="https://app.example/bye", state="s-1")
        response = await flow.http.get(url)  # the hint names the signed-in user: no confirmation page
        assert response.status_code == 303 and response.headers["location"] == "https://app.example/bye?state=s-1"
        with pytest.raises(LoginRequired):  # the provider's session ended
            request = await rp.start_authorization("openid", prompt="none")
            await rp.finish_authorization(request, await sign_in(flow, request.url, login=False, consent=None))


async def test_end_session_without_hint_asks_the_user_first(flow: Flow, rp_http: httpx.AsyncClient) -> None:
    async with relying_party(rp_http) as rp:
        await log_in(rp, flow, "openid")
        url = await rp.end_session_url(post_logout_redirect_uri="https://app.example/bye", state="s-2")
        page = await flow.http.get(url)
        assert page.status_code == 200 and 'value="logout"' in page.text
        done = await flow.http.post("/logout/confirm", data={
            "decision": "logout", "csrf_token": hidden(page.text, "csrf_token"), "client_id": "app",
            "post_logout_redirect_uri": hidden(page.text, "post_logout_redirect_uri"),
            "state": hidden(page.text, "state")})
        assert done.status_code == 303 and done.headers["location"] == "https://app.example/bye?state=s-2"


# --- keys and access tokens ---------------------------------------------------------------------


async def test_key_rotation_needs_one_jwks_refetch(
        flow: Flow, rp_http: httpx.AsyncClient, recorder: Recorder, provider: Provider) -> None:
    clock = Clock()
    async with relying_party(rp_http, clock=clock) as rp:
        before = await log_in(rp, flow, "openid")
        assert before.id_token is not None and recorder.count("/jwks") == 1
        await rotate_keys(provider.store, provider.secret, provider.settings, provider.now(), ("RS256",))
        assert await refresh_keys(provider)  # what a running server does every key_refresh_interval
        clock.offset = 120  # the next login, two minutes later (the cached JWKS is not stale yet)
        after = await log_in(rp, flow, "openid", login=False, consent=None)
        assert after.id_token is not None and kid(after.id_token) != kid(before.id_token)
        assert after.subject == "user-alice" and recorder.count("/jwks") == 2
        await log_in(rp, flow, "openid", login=False, consent=None)
        assert recorder.count("/jwks") == 2  # the new key is known now


async def test_logins_finishing_together_after_a_key_rotation_all_succeed(
        flow: Flow, rp_http: httpx.AsyncClient, recorder: Recorder, provider: Provider) -> None:
    """Two users' callbacks arrive at once, just after the provider rotated its keys: both logins
    are genuine and both must go through, whichever of them triggers the JWKS refetch."""
    clock = Clock()
    async with relying_party(rp_http, clock=clock) as rp:
        await log_in(rp, flow, "openid")  # the JWKS is cached from here on
        requests = [await rp.start_authorization("openid") for _ in range(2)]
        callbacks = [await sign_in(flow, r.url, login=False, consent=None) for r in requests]
        await rotate_keys(provider.store, provider.secret, provider.settings, provider.now(), ("RS256",))
        assert await refresh_keys(provider)
        clock.offset = 120
        recorder.latency["/jwks"] = 0.3  # the refetch one login starts is still on its way when the other checks
        results = await asyncio.gather(*(rp.finish_authorization(r, c) for r, c in zip(requests, callbacks,
                                                                                          strict=True)),
                                       return_exceptions=True)
        assert [type(r).__name__ for r in results] == ["TokenSet", "TokenSet"], results
        assert recorder.count("/jwks") <= 3  # a refetch each at most, not a flood


async def test_resource_validator_accepts_the_access_tokens_the_client_got(
        flow: Flow, rp_http: httpx.AsyncClient, provider: Provider) -> None:
    api = TokenValidator(ISSUER, provider.settings.audience, http=rp_http)
    async with relying_party(rp_http) as rp, relying_party(rp_http, "svc", S, redirect_uri=None) as svc:
        tokens = await log_in(rp, flow, "openid profile")
        user = await api.validate(tokens.access_token)
        assert user.subject == "user-alice" and user.client_id == "app" and user.scopes == {"openid", "profile"}
        service = await api.validate((await svc.client_credentials("api:read")).access_token)
        assert service.subject == "svc" and service.scopes == {"api:read"}
        with pytest.raises(ResourceInvalidToken):  # an ID token is not an access token
            await api.validate(tokens.id_token)  # type: ignore[arg-type]
