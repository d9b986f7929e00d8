"""Interop: node's certified relying-party library openid-client (v6) against a real `bastion serve`.

tests/interop/rp_flow.mjs does discovery, builds the authorization URL (code + PKCE S256, state,
nonce), answers Bastion's login and consent pages over plain HTTP, then lets openid-client redeem
the code (it validates the ID token, nonce included) and call userinfo. The negative runs show that
openid-client refuses a tampered state, and that Bastion refuses a wrong PKCE verifier.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.node_driver import run_node
from tests.live_server import LiveServer, live_server

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Shared by the negative runs: alice may have consented already, so consent may be skipped."""
    with live_server(tmp_path_factory.mktemp("bastion-openid-client")) as srv:
        yield srv


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A provider where alice has never consented to interop-app: the full login + consent flow."""
    with live_server(tmp_path) as srv:
        yield srv


def run_rp(server: LiveServer, peers: Path, scenario: str) -> tuple[int, dict[str, Any], str]:
    return run_node("rp_flow.mjs", scenario, server, peers, {
        "RP_CLIENT_ID": server.client_id,
        "RP_CLIENT_SECRET": server.client_secret,
        "RP_REDIRECT_URI": server.redirect_uri,
        "RP_USERNAME": server.username,
        "RP_PASSWORD": server.password,
    })


def test_openid_client_code_flow_with_pkce(fresh_server: LiveServer, node_peers: Path) -> None:
    server = fresh_server
    code, result, diag = run_rp(server, node_peers, "happy")
    assert code == 0, diag
    assert result["openid_client"].startswith("6."), diag

    discovery = result["discovery"]
    assert discovery["issuer"] == server.issuer, diag
    assert discovery["supports_pkce"] is True, diag
    assert "S256" in discovery["code_challenge_methods_supported"], diag

    # The login contract was followed: a login page, a consent page, both with a CSRF token.
    kinds = [step.get("kind") for step in result["steps"]]
    assert kinds.count("login") == 1 and kinds.count("consent") == 1, diag
    assert kinds[-1] == "callback", diag
    pages = [step for step in result["steps"] if step.get("kind") in ("login", "consent")]
    assert all(step["csrf_token"] for step in pages), diag
    assert result["callback"]["state"] == result["state_sent"], diag
    assert result["callback"]["iss"] == server.issuer, diag

    # openid-client validated the ID token (signature, iss, aud, exp, nonce) before returning.
    claims = result["id_token_claims"]
    assert claims["iss"] == server.issuer, diag
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert server.client_id in aud, diag
    assert claims["nonce"] == result["nonce_sent"], diag
    assert claims["sub"], diag
    assert result["token_response"]["has_access_token"] and result["token_response"]["has_id_token"], diag

    userinfo = result["userinfo"]
    assert userinfo["sub"] == claims["sub"], diag
    assert userinfo["email"] == "alice@example.com", diag
    assert userinfo["name"] == "Alice Liddell", diag

    # Exactly one token request and one userinfo request were made by the library.
    urls = [(r["method"], r["url"], r["status"]) for r in result["rp_requests"]]
    assert ("POST", discovery["token_endpoint"], 200) in urls, diag
    assert ("GET", discovery["userinfo_endpoint"], 200) in urls, diag


def test_openid_client_rejects_tampered_state(server: LiveServer, node_peers: Path) -> None:
    code, result, diag = run_rp(server, node_peers, "tampered-state")
    assert code == 0, diag
    assert result["rejected"] is True, diag
    assert result["error"]["code"] == "OAUTH_INVALID_RESPONSE", diag
    assert "state" in json.dumps(result["error"]), diag
    # Refused locally: the code was never sent to the token endpoint.
    assert result["token_requests"] == 0, diag


def test_wrong_pkce_verifier_gets_invalid_grant(server: LiveServer, node_peers: Path) -> None:
    code, result, diag = run_rp(server, node_peers, "wrong-verifier")
    assert code == 0, diag
    assert result["rejected"] is True, diag
    assert result["token_requests"] == 1, diag
    assert result["error"]["code"] == "OAUTH_RESPONSE_BODY_ERROR", diag
    assert result["error"]["status"] == 400, diag
    assert result["error"]["error"] == "invalid_grant", diag
