"""The token endpoint: client authentication, code redemption rules, PKCE, reuse revocation."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from bastion.core.provider import Provider
from tests.conftest import SECRET, on_both_backends
from tests.web.flow import APP_REDIRECT, Flow

pytestmark = on_both_backends


def assert_oauth_error(response: httpx.Response, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


async def code_for(flow: Flow, **overrides: str | None) -> tuple[str, str]:
    req = flow.request(**overrides)
    callback = await flow.run(req)
    return callback["code"], req.verifier


async def test_code_reuse_fails_and_revokes_what_the_first_redemption_issued(
        flow: Flow, http: httpx.AsyncClient) -> None:
    code, verifier = await code_for(flow)
    first = await flow.exchange(code, verifier)
    assert first.status_code == 200
    token = first.json()["access_token"]
    assert (await http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    assert_oauth_error(await flow.exchange(code, verifier), "invalid_grant")
    revoked = await http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 401
    assert 'error="invalid_token"' in revoked.headers["www-authenticate"]


async def test_concurrent_redemptions_never_leave_two_live_tokens(flow: Flow, http: httpx.AsyncClient) -> None:
    import asyncio

    code, verifier = await code_for(flow)
    results = await asyncio.gather(*(flow.exchange(code, verifier) for _ in range(10)))
    statuses = sorted(r.status_code for r in results)
    # At most one redemption wins; every replay is a reuse, so whatever the winner got is revoked too.
    assert statuses.count(200) <= 1 and statuses.count(400) >= 9
    for winner in (r for r in results if r.status_code == 200):
        token = winner.json()["access_token"]
        assert (await http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})).status_code == 401


@pytest.mark.parametrize(("verifier", "description"), [
    (None, "missing"), ("x" * 43, "wrong"), ("short", "malformed")])
async def test_pkce_verifier_is_checked(flow: Flow, verifier: str | None, description: str) -> None:
    code, _ = await code_for(flow)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": APP_REDIRECT}
    if verifier is not None:
        data["code_verifier"] = verifier
    response = await flow.http.post("/token", data=data, auth=("app", SECRET))
    assert_oauth_error(response, "invalid_grant")


async def test_redirect_uri_must_match(flow: Flow) -> None:
    code, verifier = await code_for(flow)
    assert_oauth_error(await flow.exchange(code, verifier, redirect_uri="https://app.example/other"), "invalid_grant")
    assert_oauth_error(await flow.http.post("/token", data={
        "grant_type": "authorization_code", "code": code, "code_verifier": verifier}, auth=("app", SECRET)),
        "invalid_request")
    # The failed attempts did not burn the code for its rightful owner.
    assert (await flow.exchange(code, verifier)).status_code == 200


async def test_code_is_bound_to_its_client(flow: Flow) -> None:
    code, verifier = await code_for(flow)
    assert_oauth_error(await flow.exchange(code, verifier, client_id="native", secret=None), "invalid_grant")


async def test_expired_code_is_refused(flow: Flow, provider: Provider) -> None:
    code, verifier = await code_for(flow)
    real_now = provider.clock
    provider.clock = lambda: real_now() + timedelta(seconds=61)
    assert_oauth_error(await flow.exchange(code, verifier), "invalid_grant")


@pytest.mark.parametrize("auth", [("app", "wrong-secret"), ("nobody", SECRET), ("app", "")])
async def test_bad_client_credentials_get_401_with_challenge(flow: Flow, auth: tuple[str, str]) -> None:
    code, verifier = await code_for(flow)
    response = await flow.http.post("/token", auth=auth, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": APP_REDIRECT, "code_verifier": verifier})
    assert_oauth_error(response, "invalid_client", 401)
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_confidential_client_without_secret_is_invalid_client(flow: Flow) -> None:
    code, verifier = await code_for(flow)
    response = await flow.http.post("/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": APP_REDIRECT, "code_verifier": verifier,
        "client_id": "app"})
    assert_oauth_error(response, "invalid_client", 401)


async def test_only_the_registered_authentication_method_is_accepted(flow: Flow, provider: Provider) -> None:
    from bastion.core.models import Client
    from bastion.core.secrets import hash_secret

    await provider.store.create_client(Client(
        client_id="poster", client_name="Poster", redirect_uris=(APP_REDIRECT,),
        token_endpoint_auth_method="client_secret_post", secret_hash=hash_secret("p" * 40), created_at=provider.now()))
    code, verifier = await code_for(flow, client_id="poster")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": APP_REDIRECT, "code_verifier": verifier}
    assert_oauth_error(await flow.http.post("/token", data=form, auth=("poster", "p" * 40)), "invalid_client", 401)
    response = await flow.http.post("/token", data={**form, "client_id": "poster", "client_secret": "p" * 40})
    assert response.status_code == 200, response.text
    # And the other way round: "app" registered client_secret_basic may not post its secret.
    req = flow.request()
    code, verifier = (await flow.run(req, expect_login=False))["code"], req.verifier
    refused = await flow.http.post("/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": APP_REDIRECT, "code_verifier": verifier,
        "client_id": "app", "client_secret": SECRET})
    assert_oauth_error(refused, "invalid_client", 401)


async def test_two_authentication_methods_at_once_are_refused(flow: Flow) -> None:
    code, verifier = await code_for(flow)
    response = await flow.http.post("/token", auth=("app", SECRET), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": APP_REDIRECT, "code_verifier": verifier,
        "client_secret": SECRET})
    assert_oauth_error(response, "invalid_request")


async def test_public_client_may_not_send_a_secret(flow: Flow) -> None:
    req = flow.request(client_id="native", redirect_uri="http://127.0.0.1/callback")
    callback = await flow.run(req)
    response = await flow.exchange(callback["code"], req.verifier, client_id="native", secret="anything",
                                   redirect_uri="http://127.0.0.1/callback")
    assert_oauth_error(response, "invalid_client", 401)


async def test_grant_type_rules(flow: Flow) -> None:
    assert_oauth_error(await flow.http.post("/token", data={"grant_type": "password"}, auth=("app", SECRET)),
                       "unsupported_grant_type")
    assert_oauth_error(await flow.http.post("/token", data={}, auth=("app", SECRET)), "invalid_request")
    assert_oauth_error(await flow.http.post("/token", json={"grant_type": "authorization_code"},
                                            auth=("app", SECRET)), "invalid_request")


async def test_code_issued_to_client_is_bound_to_scope_and_nonce(flow: Flow) -> None:
    _, body = await flow.tokens(scope="openid", nonce="n-123")
    assert body["scope"] == "openid"
    assert "refresh_token" not in body


async def test_token_endpoint_allows_cors_and_answers_preflight(http: httpx.AsyncClient) -> None:
    response = await http.options("/token", headers={"Origin": "https://spa.example",
                                                     "Access-Control-Request-Method": "POST"})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    refused = await http.post("/token", data={"grant_type": "authorization_code"}, headers={"Origin": "https://x"})
    assert refused.headers["access-control-allow-origin"] == "*"
    assert (await http.options("/authorize")).status_code == 405
