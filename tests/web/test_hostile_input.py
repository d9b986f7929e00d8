"""Inputs that databases or parsers choke on get RFC errors, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import httpx

from tests.conftest import SECRET, on_both_backends
from tests.web.flow import Flow, query

pytestmark = on_both_backends


async def test_nul_bytes_are_invalid_requests_not_server_errors(flow: Flow, http: httpx.AsyncClient) -> None:
    page = await http.get("/authorize", params={"client_id": "a\x00b", "redirect_uri": "https://app.example/cb"})
    assert page.status_code == 400 and "location" not in page.headers
    # Unparseable parameters leave no trustworthy redirect URI: a page, never a redirect.
    mangled = await flow.authorize(flow.request(nonce="n\x00"))
    assert mangled.status_code == 400 and "location" not in mangled.headers
    token = await http.post("/token", data={"grant_type": "authorization_code", "client_id": "x\x00"})
    assert token.status_code == 400 and token.json()["error"] == "invalid_request"
    basic = await http.post("/token", data={"grant_type": "authorization_code"}, auth=("x\x00", SECRET))
    assert basic.status_code == 401 and basic.json()["error"] == "invalid_client"
    assert (await http.get("/logout", params={"client_id": "a\x00"})).status_code == 400


async def test_an_access_token_is_not_an_id_token_hint(flow: Flow) -> None:
    _, body = await flow.tokens()
    response = await flow.authorize(flow.request(prompt="none", id_token_hint=body["access_token"]))
    assert query(response.headers["location"])["error"] == "invalid_request"


async def test_token_in_the_userinfo_query_gets_a_bearer_challenge(flow: Flow, http: httpx.AsyncClient) -> None:
    _, body = await flow.tokens()
    response = await http.get("/userinfo", params={"access_token": body["access_token"]})
    assert response.status_code == 400
    assert response.headers["www-authenticate"].startswith('Bearer realm="bastion", error="invalid_request"')


async def test_malformed_resource_is_invalid_target(flow: Flow, http: httpx.AsyncClient) -> None:
    response = await flow.authorize(flow.request(resource="http://[abc"))
    assert query(response.headers["location"])["error"] == "invalid_target"
    token = await http.post("/token", data={"grant_type": "authorization_code", "code": "x",
                                            "redirect_uri": "https://app.example/cb", "resource": "http://[abc"},
                            auth=("app", SECRET))
    assert token.status_code == 400 and token.json()["error"] in ("invalid_target", "invalid_grant")
    # Repeated `resource` is legal (RFC 8707), empty values included.
    repeated = await http.post("/token", content="grant_type=client_credentials&resource=&resource=https://x.example",
                               auth=("app", SECRET), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert repeated.json()["error"] == "unauthorized_client"
