"""Interop: `bastion.client` and `bastion.resource.TokenValidator` against node's certified oidc-provider.

The relying party and the resource-server validator are tested here against a provider that is not
Bastion (tests/interop/node_op.py runs oidc-provider 9 on loopback), so that a misreading of a
specification shared by Bastion's provider and its client libraries cannot hide. Every login is
answered over plain HTTP by the harness's `Browser`; nothing is mocked. What oidc-provider does
(see op_server.mjs): `iss` in every authorization response (RFC 9207), refresh tokens always issued
and rotated, JWT access tokens (RFC 9068) only for a resource indicator, a code-flow ID token with
only sub / nonce / aud / iss / iat / exp (the email comes from UserInfo), introspection and
revocation only for opaque tokens, and a device flow without `interval` (so the 5 s default).
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bastion.client import (
    AccessDenied,
    AsyncClient,
    Client,
    ConsentRequired,
    DiscoveryError,
    IssuerMismatch,
    LoginRequired,
    RefreshTokenRevoked,
    StateMismatch,
    TokenSet,
)
from bastion.client import errors as client_errors
from bastion.resource import InvalidToken, TokenValidator
from tests.interop.node_op import RESOURCE_ES256, RESOURCE_RS256, Browser, NodeOP

pytestmark = pytest.mark.interop

USER_SCOPE = "openid profile email"
RESOURCE_SCOPE = "openid read write"


def jwt_part(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def client_kwargs(op: NodeOP, name: str) -> dict[str, Any]:
    """Constructor arguments of a Client for the provider's client `name`, as an application would
    write them: the auth method is implied (key → private_key_jwt, secret → basic, nothing → none),
    except for client_secret_post, which has to be named."""
    registered = op.clients[name]
    kwargs: dict[str, Any] = {"redirect_uri": registered.redirect_uri}
    if name == "post":
        kwargs["auth_method"] = "client_secret_post"
    if name == "private_key_jwt":
        kwargs.update(private_key=op.private_key, key_id=op.private_key_kid)
    return {"issuer": op.issuer, "client_id": registered.client_id, "client_secret": registered.client_secret,
            **kwargs}


def sync_client(op: NodeOP, name: str, **extra: Any) -> Client:
    return Client(**client_kwargs(op, name), **extra)


def async_client(op: NodeOP, name: str, **extra: Any) -> AsyncClient:
    return AsyncClient(**client_kwargs(op, name), **extra)


def login(client: Client, account: str = "alice", scope: str = USER_SCOPE, **start: Any) -> TokenSet:
    """The code flow with PKCE, the user answering the provider's login and consent pages."""
    request = client.start_authorization(scope, **start)
    with Browser() as browser:
        callback = browser.login(request.url, account)
    return client.finish_authorization(request, callback)


async def alogin(client: AsyncClient, account: str = "alice", scope: str = USER_SCOPE, **start: Any) -> TokenSet:
    request = await client.start_authorization(scope, **start)
    with Browser() as browser:
        callback = await asyncio.to_thread(browser.login, request.url, account)
    return await client.finish_authorization(request, callback)


def assert_login(op: NodeOP, client_id: str, tokens: TokenSet, account: str) -> None:
    """A validated ID token about `account`, for this client, from this issuer; a refresh token."""
    assert tokens.claims is not None and tokens.id_token is not None
    assert tokens.subject == account
    assert tokens.claims["iss"] == op.issuer and tokens.claims["aud"] == client_id
    assert jwt_part(tokens.id_token, 1) == dict(tokens.claims)  # the claims are the token's own
    assert tokens.token_type.lower() == "bearer" and tokens.expires_at is not None
    assert tokens.refresh_token  # oidc-provider (as configured) always issues one


class RequestLog:
    """An httpx.Client event hook: the (method, url) of every request the Client sends."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> None:
        with self._lock:
            self.requests.append((request.method, str(request.url.copy_with(query=None))))

    def count(self, url: str) -> int:
        with self._lock:
            return sum(1 for _, sent in self.requests if sent == url)


@pytest.fixture
def request_log() -> Iterator[tuple[httpx.Client, RequestLog]]:
    log = RequestLog()
    with httpx.Client(timeout=10, event_hooks={"request": [log]}) as http:
        yield http, log


# --- 1. the code flow with PKCE, each client authentication method -----------------------------


@pytest.mark.parametrize(("name", "account"), [
    ("basic", "alice"), ("post", "bob"), ("public", "carol"), ("private_key_jwt", "dave"),
])
def test_code_flow_each_auth_method(node_op: NodeOP, name: str, account: str) -> None:
    registered = node_op.clients[name]
    with sync_client(node_op, name) as client:
        assert client.authentication.method == registered.token_endpoint_auth_method
        request = client.start_authorization(USER_SCOPE)
        params = query(request.url)
        assert params["code_challenge_method"] == ["S256"] and params["nonce"] == [request.nonce]
        with Browser() as browser:
            callback = browser.login(request.url, account)
        assert query(callback)["iss"] == [node_op.issuer]  # RFC 9207, which the Client requires here
        tokens = client.finish_authorization(request, callback)
        assert_login(node_op, registered.client_id, tokens, account)
        assert tokens.claims is not None and tokens.claims["nonce"] == request.nonce
        assert "email" not in tokens.claims  # oidc-provider's conformIdTokenClaims: UserInfo has it
        assert tokens.access_token.count(".") == 0  # no resource indicator: opaque
        assert tokens.scopes == set(USER_SCOPE.split())
        userinfo = client.userinfo(tokens)  # its sub is checked against the ID token's
        assert userinfo == {"sub": account, "email": f"{account}@example.com", "email_verified": True,
                            "name": f"User {account}"}


@pytest.mark.parametrize("name", ["post", "private_key_jwt"])
async def test_async_code_flow(node_op: NodeOP, name: str) -> None:
    async with async_client(node_op, name) as client:
        tokens = await alogin(client, "erin")
        assert_login(node_op, node_op.clients[name].client_id, tokens, "erin")
        assert (await client.userinfo(tokens))["email"] == "erin@example.com"


def test_callback_checks(node_op: NodeOP) -> None:
    """A callback for another login (state) or from another issuer (iss) is refused before the
    code is redeemed; the genuine callback still works afterwards (the code was not spent)."""
    with sync_client(node_op, "basic") as client:
        request = client.start_authorization(USER_SCOPE)
        with Browser() as browser:
            callback = browser.login(request.url)
        other = client.start_authorization(USER_SCOPE)
        with pytest.raises(StateMismatch):
            client.finish_authorization(other, callback)
        forged = callback.replace("iss=" + node_op.issuer.replace(":", "%3A").replace("/", "%2F"),
                                  "iss=https%3A%2F%2Fevil.example")
        assert forged != callback
        with pytest.raises(IssuerMismatch):
            client.finish_authorization(request, forged)
        assert client.finish_authorization(request, callback).subject == "alice"


def test_max_age_and_form_post(node_op: NodeOP) -> None:
    """max_age makes the ID token carry auth_time, which the Client then checks; a form_post
    response (its fields given as a mapping) is accepted like a query callback."""
    with sync_client(node_op, "basic") as client:
        request = client.start_authorization(USER_SCOPE, max_age=300, response_mode="form_post")
        with Browser() as browser:
            posted = browser.login(request.url, "olivia")
        fields = {name: values[0] for name, values in query(posted).items()}
        assert fields["iss"] == node_op.issuer and "code" in fields
        tokens = client.finish_authorization(request, fields)
    assert tokens.subject == "olivia" and tokens.claims is not None
    assert isinstance(tokens.claims.get("auth_time"), int)


# --- 2. JWT access tokens (RFC 9068) and the resource server's validator -----------------------


def test_resource_rs256_token_validated(node_op: NodeOP) -> None:
    with sync_client(node_op, "basic") as client:
        tokens = login(client, "alice", RESOURCE_SCOPE, resource=RESOURCE_RS256)
    assert_login(node_op, node_op.clients["basic"].client_id, tokens, "alice")
    header = jwt_part(tokens.access_token, 0)
    assert (header["typ"], header["alg"]) == ("at+jwt", "RS256")
    assert tokens.scopes == {"read", "write"}  # oidc-provider lists only the resource's scopes

    validator = TokenValidator(node_op.issuer, RESOURCE_RS256)
    access = validator.validate_sync(tokens.access_token)
    assert access.subject == "alice" and access.scopes == {"read", "write"}
    assert access.client_id == node_op.clients["basic"].client_id
    assert access.claims["aud"] == RESOURCE_RS256 and access.claims["iss"] == node_op.issuer
    access.require_scopes("read", "write")

    assert tokens.id_token is not None
    with pytest.raises(InvalidToken):  # typ JWT, aud = the client: not an access token for this API
        validator.validate_sync(tokens.id_token)
    with pytest.raises(InvalidToken, match="audience"):
        TokenValidator(node_op.issuer, RESOURCE_ES256).validate_sync(tokens.access_token)
    with pytest.raises(InvalidToken, match="issuer"):
        TokenValidator(node_op.issuer + "/", RESOURCE_RS256).validate_sync(tokens.access_token)
    with sync_client(node_op, "basic") as client, pytest.raises(client_errors.InvalidToken):
        client.userinfo(tokens)  # oidc-provider's UserInfo refuses a token meant for another API


async def test_resource_es256_token_validated_async(node_op: NodeOP) -> None:
    async with async_client(node_op, "private_key_jwt") as client:
        tokens = await alogin(client, "frank", "openid read", resource=RESOURCE_ES256)
    assert_login(node_op, node_op.clients["private_key_jwt"].client_id, tokens, "frank")
    header = jwt_part(tokens.access_token, 0)
    assert (header["typ"], header["alg"]) == ("at+jwt", "ES256")
    assert tokens.scopes == {"read"}  # only what was asked for

    async with httpx.AsyncClient(timeout=10) as http:
        validator = TokenValidator(node_op.issuer, RESOURCE_ES256, http=http)
        access = await validator.validate(tokens.access_token)
        assert access.subject == "frank" and access.scopes == {"read"}
        assert access.claims["aud"] == RESOURCE_ES256
        assert tokens.id_token is not None
        with pytest.raises(InvalidToken):
            await validator.validate(tokens.id_token)
        with pytest.raises(InvalidToken, match="audience"):
            await TokenValidator(node_op.issuer, RESOURCE_RS256, http=http).validate(tokens.access_token)


# --- 3. refresh: rotation, the refreshed ID token, reuse detection ------------------------------


def test_refresh_rotation_and_reuse(node_op: NodeOP) -> None:
    with sync_client(node_op, "basic") as client:
        tokens = login(client, "grace")
        refreshed = client.refresh(tokens)
        assert refreshed.refresh_token and refreshed.refresh_token != tokens.refresh_token  # rotated
        assert refreshed.access_token != tokens.access_token
        # A new ID token came and was validated (within the same second oidc-provider's is
        # byte-identical to the first: same claims, nonce included, deterministic RS256).
        assert "id_token" in refreshed.raw and refreshed.id_token == refreshed.raw["id_token"]
        assert refreshed.claims == jwt_part(refreshed.id_token, 1)
        assert refreshed.subject == "grace" and refreshed.claims["aud"] == client.client_id
        assert client.userinfo(refreshed)["sub"] == "grace"

        with pytest.raises(RefreshTokenRevoked) as reused:  # the rotated-out token
            client.refresh(tokens)
        assert reused.value.error == "invalid_grant" and reused.value.status == 400
        with pytest.raises(RefreshTokenRevoked):  # reuse revoked the whole grant, the new one too
            client.refresh(refreshed)


def test_refresh_narrows_scope(node_op: NodeOP) -> None:
    with sync_client(node_op, "public") as client:
        tokens = login(client, "peggy")
        narrowed = client.refresh(tokens, scope="openid email")
        assert narrowed.scopes == {"openid", "email"} and narrowed.subject == "peggy"
        assert client.userinfo(narrowed) == {"sub": "peggy", "email": "peggy@example.com", "email_verified": True}


async def test_async_refresh_rotation(node_op: NodeOP) -> None:
    async with async_client(node_op, "private_key_jwt") as client:
        tokens = await alogin(client, "quinn")
        refreshed = await client.refresh(tokens)
        assert refreshed.subject == "quinn" and refreshed.refresh_token != tokens.refresh_token
        with pytest.raises(RefreshTokenRevoked):
            await client.refresh(tokens)


def test_refresh_keeps_resource_token(node_op: NodeOP) -> None:
    """A refresh of a login with a resource indicator gives a new JWT access token for it."""
    with sync_client(node_op, "post") as client:
        tokens = login(client, "heidi", RESOURCE_SCOPE, resource=RESOURCE_RS256)
        refreshed = client.refresh(tokens, resource=RESOURCE_RS256)
    assert refreshed.subject == "heidi" and refreshed.refresh_token != tokens.refresh_token
    access = TokenValidator(node_op.issuer, RESOURCE_RS256).validate_sync(refreshed.access_token)
    assert access.subject == "heidi" and access.scopes == {"read", "write"}


# --- 4. client credentials: JWT for a resource, cached, one request for concurrent callers -----


def test_client_credentials_cached(node_op: NodeOP, request_log: tuple[httpx.Client, RequestLog]) -> None:
    http, log = request_log
    token_endpoint = node_op.metadata["token_endpoint"]
    registered = node_op.clients["basic"]
    with sync_client(node_op, "basic", http=http) as client:
        tokens = client.client_credentials(scope="read", resource=RESOURCE_ES256)
        assert tokens.id_token is None and tokens.refresh_token is None and tokens.expires_at is not None
        assert jwt_part(tokens.access_token, 0)["alg"] == "ES256"
        sent = len(log.requests)
        assert log.count(token_endpoint) == 1
        assert client.client_credentials(scope="read", resource=RESOURCE_ES256) is tokens
        assert len(log.requests) == sent  # no request at all
    assert not http.is_closed  # a Client does not close the httpx.Client it was given

    access = TokenValidator(node_op.issuer, RESOURCE_ES256, sync_http=http).validate_sync(tokens.access_token)
    # RFC 9068 §2.2: without a resource owner, sub is the client; oidc-provider puts the client id.
    assert access.subject == registered.client_id and access.client_id == registered.client_id
    assert access.scopes == {"read"}


def test_client_credentials_without_resource_is_opaque(node_op: NodeOP) -> None:
    with sync_client(node_op, "private_key_jwt") as client:
        tokens = client.client_credentials(scope="read")
        assert tokens.access_token.count(".") == 0
        found = client.introspect(tokens.access_token)
    assert found["active"] is True and found["client_id"] == node_op.clients["private_key_jwt"].client_id


def test_client_credentials_concurrent_callers_share_one_request(
        node_op: NodeOP, request_log: tuple[httpx.Client, RequestLog]) -> None:
    http, log = request_log
    token_endpoint = node_op.metadata["token_endpoint"]
    with sync_client(node_op, "post", http=http) as client:
        client.discover()  # discovery out of the way: only the token requests are counted
        barrier = threading.Barrier(20)
        results: list[TokenSet] = []
        errors: list[BaseException] = []

        def call() -> None:
            try:
                barrier.wait(timeout=10)
                results.append(client.client_credentials(scope="read write", resource=RESOURCE_RS256))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=call) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=15)
        assert not errors and len(results) == 20, errors
        assert log.count(token_endpoint) == 1
        assert all(result is results[0] for result in results)
    access = TokenValidator(node_op.issuer, RESOURCE_RS256).validate_sync(results[0].access_token)
    assert access.scopes == {"read", "write"}


async def test_async_client_credentials_concurrent(node_op: NodeOP) -> None:
    log = RequestLog()

    async def hook(request: httpx.Request) -> None:
        log(request)

    async with (
        httpx.AsyncClient(timeout=10, event_hooks={"request": [hook]}) as http,
        async_client(node_op, "basic", http=http) as client,
    ):
        await client.discover()
        results = await asyncio.gather(*(client.client_credentials(scope="write", resource=RESOURCE_RS256)
                                         for _ in range(20)))
    assert log.count(node_op.metadata["token_endpoint"]) == 1
    assert all(result is results[0] for result in results)


# --- 5. the device flow (RFC 8628): approved and denied, polled at the same time ---------------


async def test_device_flow_approved_and_denied(node_op: NodeOP) -> None:
    """Both devices wait the default 5 s interval (oidc-provider sends none) concurrently."""
    async with async_client(node_op, "public") as client:
        approved = await client.device_authorization(scope="openid")
        denied = await client.device_authorization(scope="openid")
        assert approved.interval == 5 and approved.user_code != denied.user_code
        assert approved.verification_uri == f"{node_op.issuer}/device"
        with Browser() as browser:
            await asyncio.to_thread(browser.approve_device, approved.verification_uri, approved.user_code, "ivan")
        with Browser() as browser:
            await asyncio.to_thread(browser.approve_device, denied.verification_uri, denied.user_code, "ivan",
                                    deny=True)
        tokens, refusal = await asyncio.gather(client.poll_device_token(approved), client.poll_device_token(denied),
                                               return_exceptions=True)
    assert isinstance(tokens, TokenSet), tokens
    assert_login(node_op, node_op.clients["public"].client_id, tokens, "ivan")
    assert isinstance(refusal, AccessDenied), refusal
    assert refusal.error == "access_denied"


# --- 6. introspection (RFC 7662) and revocation (RFC 7009) -------------------------------------


def test_introspect_and_revoke(node_op: NodeOP) -> None:
    registered = node_op.clients["basic"]
    with sync_client(node_op, "basic") as client:
        tokens = login(client, "judy")
        found = client.introspect(tokens.access_token)
        assert found["active"] is True and found["client_id"] == registered.client_id
        assert found["sub"] == "judy" and found.get("token_type") == "Bearer"
        assert tokens.refresh_token is not None
        assert client.introspect(tokens.refresh_token, token_type_hint="refresh_token")["active"] is True

        client.revoke(tokens.refresh_token, token_type_hint="refresh_token")
        assert client.introspect(tokens.refresh_token) == {"active": False}
        with pytest.raises(RefreshTokenRevoked):
            client.refresh(tokens)
        client.revoke("no-such-token-" + "x" * 30)  # RFC 7009 §2.2: unknown tokens are no error


def test_validator_introspection_fallback(node_op: NodeOP) -> None:
    """An opaque token goes to the provider's introspection endpoint. oidc-provider gives an opaque
    user token no `aud`, so it is not for an API the validator guards; an unknown one is inactive."""
    registered = node_op.clients["basic"]
    assert registered.client_secret is not None
    with sync_client(node_op, "basic") as client:
        tokens = login(client, "mallory")
    validator = TokenValidator(node_op.issuer, RESOURCE_RS256,
                               introspection=(registered.client_id, registered.client_secret))
    with pytest.raises(InvalidToken, match="audience"):
        validator.validate_sync(tokens.access_token)
    with pytest.raises(InvalidToken, match="inactive"):
        validator.validate_sync("opaque-but-unknown-" + "y" * 30)


# --- 7. RP-initiated logout ---------------------------------------------------------------------


def test_end_session(node_op: NodeOP) -> None:
    registered = node_op.clients["public"]
    with sync_client(node_op, "public") as client, Browser() as browser:
        request = client.start_authorization(USER_SCOPE)
        tokens = client.finish_authorization(request, browser.login(request.url, "kate"))
        url = client.end_session_url(tokens, post_logout_redirect_uri=registered.post_logout_redirect_uri,
                                     state="s1")
        assert url.startswith(node_op.metadata["end_session_endpoint"] + "?")
        landed = browser.logout(url)
        assert landed.split("?")[0] == registered.post_logout_redirect_uri, landed
        assert query(landed)["state"] == ["s1"]

        # The session is gone: a silent login now fails.
        request = client.start_authorization(USER_SCOPE, prompt="none")
        with pytest.raises(LoginRequired):
            client.finish_authorization(request, browser.login(request.url))


# --- 8. errors in the authorization response ---------------------------------------------------


def test_prompt_none_without_session(node_op: NodeOP) -> None:
    with sync_client(node_op, "basic") as client:
        request = client.start_authorization(USER_SCOPE, prompt="none")
        with Browser() as browser:
            callback = browser.login(request.url)
        params = query(callback)
        assert params["error"] == ["login_required"] and params["iss"] == [node_op.issuer]
        assert params["state"] == [request.state] and "code" not in params
        with pytest.raises(LoginRequired) as refused:
            client.finish_authorization(request, callback)
        assert refused.value.error == "login_required"


def test_prompt_none_with_session(node_op: NodeOP) -> None:
    """The same Browser logs in silently the second time (SSO), for another client too."""
    with sync_client(node_op, "basic") as basic, sync_client(node_op, "post") as post, Browser() as browser:
        request = basic.start_authorization(USER_SCOPE)
        basic.finish_authorization(request, browser.login(request.url, "liam"))
        request = basic.start_authorization(USER_SCOPE, prompt="none")
        assert basic.finish_authorization(request, browser.login(request.url)).subject == "liam"
        # Another client has no consent yet: prompt=none cannot ask for it.
        request = post.start_authorization(USER_SCOPE, prompt="none")
        callback = browser.login(request.url)
        assert query(callback)["error"] == ["consent_required"], callback
        with pytest.raises(ConsentRequired):
            post.finish_authorization(request, callback)


def test_user_denies_consent(node_op: NodeOP) -> None:
    with sync_client(node_op, "post") as client:
        request = client.start_authorization(USER_SCOPE)
        with Browser() as browser:
            callback = browser.login(request.url, "nina", deny=True)
        assert query(callback)["error"] == ["access_denied"]
        with pytest.raises(AccessDenied):
            client.finish_authorization(request, callback)


# --- 9. discovery --------------------------------------------------------------------------------


def test_discovery_issuer_must_match_exactly(node_op: NodeOP) -> None:
    with Client(node_op.issuer, "any") as client:
        assert client.discover().issuer == node_op.issuer
    registered = node_op.clients["basic"]
    with Client(node_op.issuer + "/", registered.client_id, registered.client_secret,
                redirect_uri=registered.redirect_uri) as client:
        with pytest.raises(DiscoveryError, match="names issuer"):
            client.start_authorization(USER_SCOPE)
        with pytest.raises(DiscoveryError):
            client.client_credentials(scope="read")


async def test_async_discovery_issuer_must_match_exactly(node_op: NodeOP) -> None:
    async with AsyncClient(node_op.issuer + "/", "any") as client:
        with pytest.raises(DiscoveryError):
            await client.discover()
