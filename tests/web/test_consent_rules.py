"""Consent covers exactly what is released: claims requests, public clients, and who consented."""

from __future__ import annotations

import json

import httpx

from bastion.core.models import Client
from bastion.core.provider import Provider
from bastion.core.secrets import hash_secret
from tests.web.flow import Flow, query


async def test_claims_request_cannot_exceed_the_client_scopes(flow: Flow, provider: Provider,
                                                              http: httpx.AsyncClient) -> None:
    await provider.store.create_client(Client(
        client_id="narrow", client_name="Narrow App", redirect_uris=("https://app.example/cb",), scope=("openid",),
        secret_hash=hash_secret("n" * 40), created_at=provider.now()))
    claims = {"userinfo": {"email": None, "phone_number": None, "address": None, "name": None},
              "id_token": {"email": None, "phone_number": None}}
    req = flow.request(client_id="narrow", scope="openid email phone", claims=json.dumps(claims))
    callback = await flow.run(req)
    body = (await flow.exchange(callback["code"], req.verifier, client_id="narrow", secret="n" * 40)).json()
    assert body["scope"] == "openid"
    info = (await http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})).json()
    assert info == {"sub": "user-alice"}
    from bastion.core import jose

    id_claims = jose.verify(body["id_token"], provider.keys.verification_keys, ["RS256"]).claims
    assert "email" not in id_claims and "phone_number" not in id_claims


async def test_requested_claims_are_consented_like_their_scopes(flow: Flow) -> None:
    await flow.tokens(scope="openid")
    # Asking for the address claim by name needs the same consent as the address scope.
    req = flow.request(scope="openid", claims=json.dumps({"userinfo": {"address": None}}))
    page = await flow.follow(await flow.authorize(req))
    assert "postal address" in page.text and 'value="allow"' in page.text
    silent = await flow.authorize(flow.request(prompt="none", scope="openid",
                                               claims=json.dumps({"userinfo": {"address": None}})))
    assert query(silent.headers["location"])["error"] == "consent_required"


async def test_claims_request_values_are_reduced_to_what_the_spec_defines(flow: Flow) -> None:
    deep: object = "x"
    for _ in range(600):
        deep = [deep]
    for claims in ({"userinfo": {"name": {"x": deep}}}, '{"userinfo": {"name": {"value": NaN}}}'):
        text = claims if isinstance(claims, str) else json.dumps(claims)
        response = await flow.authorize(flow.request(claims=text))
        assert response.status_code == 303  # a redirect (error or login), never a 500


async def test_claims_sub_value_must_match_the_logged_in_user(flow: Flow) -> None:
    await flow.tokens()
    claims = json.dumps({"id_token": {"sub": {"value": "someone-else"}}})
    response = await flow.authorize(flow.request(prompt="none", claims=claims))
    assert query(response.headers["location"])["error"] == "login_required"
    mine = json.dumps({"id_token": {"sub": {"value": "user-alice"}}})
    assert "code" in query((await flow.authorize(flow.request(prompt="none", claims=mine))).headers["location"])


async def test_public_clients_never_get_a_code_without_the_user(flow: Flow) -> None:
    native = {"client_id": "native", "redirect_uri": "http://127.0.0.1:51000/callback"}
    req = flow.request(**native)
    await flow.run(req)
    # Any local program could pose as the native app on another port: no silent code for it.
    silent = await flow.authorize(flow.request(prompt="none", client_id="native",
                                               redirect_uri="http://127.0.0.1:6666/callback"))
    assert query(silent.headers["location"])["error"] == "consent_required"
    page = await flow.follow(await flow.authorize(flow.request(**native)))
    assert 'value="allow"' in page.text


async def test_an_interaction_completed_by_one_user_does_not_serve_another(flow: Flow, provider: Provider,
                                                                          http: httpx.AsyncClient) -> None:
    from bastion.core.models import User
    from bastion.core.passwords import hash_password

    await provider.store.create_user(User(id="user-bob", username="bob", password_hash=hash_password("bob pw 123"),
                                          created_at=provider.now(), updated_at=provider.now()))
    # Alice logs in and allows on interaction I, but does not follow the final redirect.
    page = await flow.follow(await flow.authorize(flow.request(scope="openid email")))
    page = await flow.follow(await flow.login(page))
    consented = await flow.consent(page)
    interaction_url = consented.headers["location"]
    # In another tab, Bob logs in on the same browser.
    other = await flow.follow(await flow.authorize(flow.request(prompt="login")))
    await flow.login(other, username="bob", password="bob pw 123")
    # Interaction I must not issue a code for Bob on Alice's consent.
    resumed = await http.get(interaction_url)
    assert resumed.status_code == 200 and 'value="allow"' in resumed.text and "bob" in resumed.text
