"""The "Connected apps" page: what the user granted, and a Revoke button that ends the family."""

from __future__ import annotations

import re

import httpx

from bastion.core.models import Client
from bastion.core.provider import Provider
from bastion.core.secrets import hash_secret
from tests.conftest import on_both_backends
from tests.web.flow import APP_REDIRECT, Flow, hidden

pytestmark = on_both_backends
S = "r" * 40


async def test_sign_in_list_and_revoke(flow: Flow, http: httpx.AsyncClient, provider: Provider) -> None:
    await provider.store.create_client(Client(
        client_id="rt-app", client_name="Refreshing App", redirect_uris=(APP_REDIRECT,), secret_hash=hash_secret(S),
        grant_types=("authorization_code", "refresh_token"), created_at=provider.now()))
    req = flow.request(client_id="rt-app", scope="openid email offline_access")
    callback = await flow.run(req)
    tokens = (await flow.exchange(callback["code"], req.verifier, client_id="rt-app", secret=S)).json()
    http.cookies.clear()

    # Signed out: a sign-in form with CSRF protection and the same security headers.
    page = await http.get("/account/apps")
    assert page.status_code == 200 and 'action="/account/login"' in page.text
    assert page.headers["x-frame-options"] == "DENY"
    forged = await http.post("/account/login", data={"username": "alice", "password": "correct horse battery"})
    assert forged.status_code == 400
    wrong = await http.post("/account/login", data={"username": "alice", "password": "nope",
                                                    "csrf_token": hidden(page.text, "csrf_token")})
    assert wrong.status_code == 401 and "Incorrect username or password." in wrong.text
    signed_in = await http.post("/account/login", data={"username": "alice", "password": "correct horse battery",
                                                        "csrf_token": hidden(wrong.text, "csrf_token")})
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/account/apps"

    apps = await http.get("/account/apps")
    assert "Refreshing App" in apps.text and "See your email address" in apps.text
    assert "Stay connected while you are away" in apps.text

    # Revoke without the CSRF token: nothing happens.
    assert (await http.post("/account/apps/revoke", data={"client_id": "rt-app"})).status_code == 400
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    refreshed = await http.post("/token", data=form, auth=("rt-app", S))
    assert refreshed.status_code == 200
    tokens = refreshed.json()

    csrf = re.search(r'name="csrf_token" value="([^"]+)"', apps.text).group(1)  # type: ignore[union-attr]
    done = await http.post("/account/apps/revoke", data={"client_id": "rt-app", "csrf_token": csrf})
    assert done.status_code == 303
    assert "Refreshing App" not in (await http.get("/account/apps")).text
    # The whole family is gone: refresh and access tokens; and consent is asked again next time.
    dead = await http.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                           auth=("rt-app", S))
    assert dead.json()["error"] == "invalid_grant"
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await http.get("/userinfo", headers=bearer)).status_code == 401
    again = await flow.authorize(flow.request(client_id="rt-app", scope="openid email offline_access"))
    assert 'value="allow"' in (await flow.follow(again)).text


async def test_an_app_with_a_remembered_consent_stays_listed_until_revoked(
        flow: Flow, http: httpx.AsyncClient, provider: Provider) -> None:
    await provider.store.create_client(Client(
        client_id="rt-app", client_name="Refreshing App", redirect_uris=(APP_REDIRECT,), secret_hash=hash_secret(S),
        grant_types=("authorization_code", "refresh_token"), created_at=provider.now()))
    req = flow.request(client_id="rt-app", scope="openid offline_access")
    callback = await flow.run(req)
    tokens = (await flow.exchange(callback["code"], req.verifier, client_id="rt-app", secret=S)).json()
    # The client revokes its own refresh token: no live grant, but the consent still lets it in silently.
    await http.post("/revoke", data={"token": tokens["refresh_token"]}, auth=("rt-app", S))
    apps = await http.get("/account/apps")
    assert "Refreshing App" in apps.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', apps.text).group(1)  # type: ignore[union-attr]
    await http.post("/account/apps/revoke", data={"client_id": "rt-app", "csrf_token": csrf})
    silent = await flow.authorize(flow.request(client_id="rt-app", scope="openid offline_access", prompt="none"))
    assert "consent_required" in silent.headers["location"]
