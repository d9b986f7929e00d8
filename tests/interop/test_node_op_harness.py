"""Self-test of the node oidc-provider harness (tests/interop/node_op.py), with raw httpx only.

Proves, without any Bastion code, what relying-party tests rely on: discovery, the code flow with
PKCE through the development login / consent pages, the RFC 9207 `iss` in the callback, the token
exchange with each kind of client authentication, JWT access tokens for a resource indicator,
silent re-authentication (prompt=none) with a kept cookie jar, and device-flow approval.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from tests.interop.node_op import RESOURCE_RS256, Browser, NodeOP, login_over_http, pkce_pair

pytestmark = pytest.mark.interop


def jwt_part(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def authorization_url(op: NodeOP, client: str, challenge: str, **extra: str) -> tuple[str, str]:
    state = secrets.token_urlsafe(16)
    params = {
        "response_type": "code", "client_id": op.clients[client].client_id,
        "redirect_uri": op.clients[client].redirect_uri, "scope": "openid profile email",
        "state": state, "code_challenge": challenge, "code_challenge_method": "S256", **extra,
    }
    return f"{op.metadata['authorization_endpoint']}?{urlencode(params)}", state


def callback_params(op: NodeOP, callback: str, client: str, state: str) -> dict[str, str]:
    assert callback.startswith(op.clients[client].redirect_uri + "?"), callback
    params = dict(parse_qsl(urlsplit(callback).query))
    assert params.get("state") == state and params.get("iss") == op.issuer, (params, op.stderr)
    assert "code" in params, params
    return params


def test_discovery(node_op: NodeOP) -> None:
    meta = node_op.metadata
    assert meta["issuer"] == node_op.issuer and node_op.version == "9.13.3"
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint",
                     "device_authorization_endpoint", "introspection_endpoint", "revocation_endpoint",
                     "end_session_endpoint"):
        assert meta[endpoint].startswith(node_op.issuer + "/"), endpoint
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert {"client_secret_basic", "client_secret_post", "private_key_jwt", "none"} <= set(
        meta["token_endpoint_auth_methods_supported"])
    keys = httpx.get(meta["jwks_uri"], timeout=5).json()["keys"]
    assert sorted(k["alg"] for k in keys) == ["ES256", "RS256"]


def test_code_flow_with_pkce_and_resource(node_op: NodeOP) -> None:
    client = node_op.clients["basic"]
    token_endpoint = node_op.metadata["token_endpoint"]
    with httpx.Client(timeout=10, auth=(client.client_id, client.client_secret or "")) as http:
        # Opaque access token, ID token, refresh token (no offline_access needed).
        verifier, challenge = pkce_pair()
        url, state = authorization_url(node_op, "basic", challenge)
        code = callback_params(node_op, login_over_http(url), "basic", state)["code"]
        response = http.post(token_endpoint, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
            "code_verifier": verifier,
        })
        assert response.status_code == 200, (response.text, node_op.stderr)
        tokens = response.json()
        assert {"access_token", "id_token", "refresh_token"} <= tokens.keys(), tokens
        assert tokens["access_token"].count(".") == 0
        id_token = jwt_part(tokens["id_token"], 1)
        assert jwt_part(tokens["id_token"], 0)["alg"] == "RS256"
        assert (id_token["iss"], id_token["aud"], id_token["sub"]) == (node_op.issuer, client.client_id, "alice")
        # conformIdTokenClaims (default): scope-requested claims come from userinfo, not the ID token.
        assert "email" not in id_token
        userinfo = httpx.get(node_op.metadata["userinfo_endpoint"], timeout=5,
                             headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
        assert userinfo == {"sub": "alice", "email": "alice@example.com", "email_verified": True, "name": "User alice"}

        # With a resource indicator: a JWT access token (RFC 9068) for that audience.
        verifier, challenge = pkce_pair()
        url, state = authorization_url(node_op, "basic", challenge, resource=RESOURCE_RS256,
                                       scope="openid read")
        code = callback_params(node_op, login_over_http(url), "basic", state)["code"]
        response = http.post(token_endpoint, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
            "code_verifier": verifier, "resource": RESOURCE_RS256,
        })
        assert response.status_code == 200, (response.text, node_op.stderr)
        access_token = response.json()["access_token"]
        assert access_token.count(".") == 2
        assert jwt_part(access_token, 0)["typ"] == "at+jwt" and jwt_part(access_token, 0)["alg"] == "RS256"
        claims = jwt_part(access_token, 1)
        assert claims["aud"] == RESOURCE_RS256 and claims["scope"] == "read" and claims["sub"] == "alice"


def test_prompt_none_post_and_private_key_jwt(node_op: NodeOP) -> None:
    """One Browser: the second authorization (prompt=none, other client) reuses the session; its
    consent is asked once. client_secret_post and private_key_jwt authenticate at the token endpoint."""
    with Browser() as browser, httpx.Client(timeout=10) as http:
        verifier, challenge = pkce_pair()
        url, state = authorization_url(node_op, "post", challenge)
        code = callback_params(node_op, browser.login(url, "bob"), "post", state)["code"]
        post = node_op.clients["post"]
        response = http.post(node_op.metadata["token_endpoint"], data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": post.redirect_uri,
            "code_verifier": verifier, "client_id": post.client_id, "client_secret": post.client_secret,
        })
        assert response.status_code == 200 and "refresh_token" in response.json(), response.text

        verifier, challenge = pkce_pair()
        url, state = authorization_url(node_op, "post", challenge, prompt="none")
        assert "code" in callback_params(node_op, browser.login(url), "post", state)

        response = http.post(node_op.metadata["token_endpoint"], data={
            "grant_type": "client_credentials", "scope": "read", "resource": RESOURCE_RS256,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": node_op.client_assertion(node_op.metadata["token_endpoint"]),
        })
        assert response.status_code == 200, (response.text, node_op.stderr)
        assert jwt_part(response.json()["access_token"], 1)["client_id"] == node_op.clients["private_key_jwt"].client_id


def test_device_flow_approval(node_op: NodeOP) -> None:
    public = node_op.clients["public"]
    with httpx.Client(timeout=10) as http:
        response = http.post(node_op.metadata["device_authorization_endpoint"],
                             data={"client_id": public.client_id, "scope": "openid"})
        assert response.status_code == 200, response.text
        grant = response.json()
        node_op.approve_device(grant["user_code"], "carol")
        response = http.post(node_op.metadata["token_endpoint"], data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": grant["device_code"], "client_id": public.client_id,
        })
        assert response.status_code == 200, response.text
        assert jwt_part(response.json()["id_token"], 1)["sub"] == "carol"
