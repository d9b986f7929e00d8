"""UserInfo: bearer token rules (RFC 6750) and claims by scope and by the claims parameter."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx

from bastion.core.provider import Provider
from tests.web.flow import Flow


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_claims_follow_the_granted_scopes(flow: Flow, http: httpx.AsyncClient) -> None:
    _, body = await flow.tokens(scope="openid address phone")
    info = (await http.get("/userinfo", headers=bearer(body["access_token"]))).json()
    assert info == {"sub": "user-alice", "address": {"country": "UK", "locality": "Oxford"},
                    "phone_number": "+1 555 0100"}


async def test_only_sub_for_openid_alone(flow: Flow, http: httpx.AsyncClient) -> None:
    _, body = await flow.tokens(scope="openid")
    assert (await http.post("/userinfo", headers=bearer(body["access_token"]))).json() == {"sub": "user-alice"}


async def test_token_in_form_body_is_accepted(flow: Flow, http: httpx.AsyncClient) -> None:
    _, body = await flow.tokens()
    response = await http.post("/userinfo", data={"access_token": body["access_token"]})
    assert response.status_code == 200 and response.json()["email"] == "alice@example.com"


async def test_token_in_query_string_is_refused(flow: Flow, http: httpx.AsyncClient) -> None:
    _, body = await flow.tokens()
    response = await http.get("/userinfo", params={"access_token": body["access_token"]})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_missing_and_invalid_tokens_get_bearer_challenges(flow: Flow, http: httpx.AsyncClient) -> None:
    for headers in ({}, bearer("garbage"), {"Authorization": "Basic Zm9vOmJhcg=="}):
        response = await http.get("/userinfo", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer ")
        assert response.headers["cache-control"] == "no-store"
        # RFC 6750 §3.1: no error code in the challenge when no token was sent at all.
        has_error = 'error="invalid_token"' in response.headers["www-authenticate"]
        assert has_error == (headers != {})


async def test_expired_token_is_refused(flow: Flow, http: httpx.AsyncClient, provider: Provider) -> None:
    _, body = await flow.tokens()
    real_now = provider.clock
    provider.clock = lambda: real_now() + timedelta(seconds=601)
    response = await http.get("/userinfo", headers=bearer(body["access_token"]))
    assert response.status_code == 401


async def test_id_token_is_not_an_access_token(flow: Flow, http: httpx.AsyncClient) -> None:
    _, body = await flow.tokens()
    assert (await http.get("/userinfo", headers=bearer(body["id_token"]))).status_code == 401


async def test_claims_parameter_essential_userinfo_and_id_token_claims(
        flow: Flow, http: httpx.AsyncClient, provider: Provider) -> None:
    from bastion.core import jose

    claims = {"userinfo": {"name": {"essential": True}}, "id_token": {"email": {"essential": True}}}
    _, body = await flow.tokens(scope="openid", claims=json.dumps(claims))
    info = (await http.get("/userinfo", headers=bearer(body["access_token"]))).json()
    assert info == {"sub": "user-alice", "name": "Alice Liddell"}
    id_claims = jose.verify(body["id_token"], provider.keys.verification_keys, ["RS256"]).claims
    assert id_claims["email"] == "alice@example.com"


async def test_userinfo_reflects_a_deleted_user(flow: Flow, http: httpx.AsyncClient, provider: Provider) -> None:
    _, body = await flow.tokens()
    await provider.store.delete_user("user-alice", provider.now())
    assert (await http.get("/userinfo", headers=bearer(body["access_token"]))).status_code == 401
