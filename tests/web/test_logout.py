"""RP-initiated logout 1.0."""

from __future__ import annotations

import re

import httpx

from tests.web.flow import Flow, query


async def test_logout_with_hint_redirects_with_state_and_ends_the_session(flow: Flow, http: httpx.AsyncClient) -> None:
    _, body = await flow.tokens()
    response = await http.get("/logout", params={
        "id_token_hint": body["id_token"], "post_logout_redirect_uri": "https://app.example/bye", "state": "s1"})
    assert response.status_code == 303
    assert response.headers["location"] == "https://app.example/bye?state=s1"
    assert "bastion_session=" in response.headers["set-cookie"]
    silent = await flow.authorize(flow.request(prompt="none"))
    assert query(silent.headers["location"])["error"] == "login_required"


async def test_unregistered_post_logout_redirect_uri_is_a_page(flow: Flow, http: httpx.AsyncClient) -> None:
    _, body = await flow.tokens()
    response = await http.get("/logout", params={
        "id_token_hint": body["id_token"], "post_logout_redirect_uri": "https://evil.example/"})
    assert response.status_code == 400 and "location" not in response.headers
    no_client = await http.get("/logout", params={"post_logout_redirect_uri": "https://app.example/bye"})
    assert no_client.status_code == 400 and "location" not in no_client.headers


async def test_bad_id_token_hint_is_a_page(http: httpx.AsyncClient) -> None:
    response = await http.get("/logout", params={"id_token_hint": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."})
    assert response.status_code == 400 and "location" not in response.headers


async def test_logout_without_hint_asks_the_user_to_confirm(flow: Flow, http: httpx.AsyncClient) -> None:
    await flow.tokens()
    page = await http.get("/logout", params={"client_id": "app", "post_logout_redirect_uri": "https://app.example/bye",
                                             "state": "xyz"})
    assert page.status_code == 200 and 'value="logout"' in page.text
    assert page.headers["x-frame-options"] == "DENY"
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    # Without the CSRF token nothing happens.
    forged = await http.post("/logout/confirm", data={"decision": "logout", "client_id": "app"})
    assert forged.status_code == 400
    assert "code" in query((await flow.authorize(flow.request(prompt="none"))).headers["location"])
    done = await http.post("/logout/confirm", data={
        "decision": "logout", "csrf_token": csrf, "client_id": "app",
        "post_logout_redirect_uri": "https://app.example/bye", "state": "xyz"})
    assert done.status_code == 303 and done.headers["location"] == "https://app.example/bye?state=xyz"
    assert query((await flow.authorize(flow.request(prompt="none"))).headers["location"])["error"] == "login_required"


async def test_logout_without_session_just_says_signed_out(http: httpx.AsyncClient) -> None:
    response = await http.get("/logout")
    assert response.status_code == 200 and "signed out" in response.text
