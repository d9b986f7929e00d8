"""Interop: the device authorization grant (RFC 8628) as node's openid-client (v6) sees it.

tests/interop/device_flow.mjs runs openid-client's own device-flow functions against a real
`bastion serve`: initiateDeviceAuthorization, then pollDeviceAuthorizationGrant while the /device
verification page is answered over HTTP as the user would (prefilled code, sign-in, Allow or Deny).
In the approval run the user answers only after the library's first poll, so openid-client goes
through authorization_pending before it receives tokens (two polls, about 10 s); the denial run
denies before the first poll (one poll, about 5 s).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.node_driver import run_node
from tests.live_server import LiveServer, live_server

pytestmark = pytest.mark.interop

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SCOPE = "openid profile offline_access"
USER_CODE = re.compile(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("bastion-device-flow")) as srv:
        srv.cli("clients", "create", "--client-id", "tv", "--public", "--grant-type", DEVICE_GRANT,
                "--grant-type", "refresh_token", "--scope", SCOPE, "--name", "TV")
        yield srv


def run_device_flow(server: LiveServer, peers: Path, scenario: str) -> tuple[int, dict[str, Any], str]:
    return run_node("device_flow.mjs", scenario, server, peers, {
        "RP_CLIENT_ID": "tv",
        "RP_USERNAME": server.username,
        "RP_PASSWORD": server.password,
        "DEVICE_SCOPE": SCOPE,
        "POLL_BUDGET_MS": "25000",
    }, timeout=40)


def assert_device_authorization(server: LiveServer, result: dict[str, Any], diag: str) -> None:
    discovery = result["discovery"]
    assert discovery["device_authorization_endpoint"] == f"{server.issuer}/device_authorization", diag
    assert DEVICE_GRANT in discovery["grant_types_supported"], diag
    device = result["device_authorization"]
    assert USER_CODE.fullmatch(device["user_code"]), diag
    assert device["verification_uri"] == f"{server.issuer}/device", diag
    assert device["verification_uri_complete"] == f"{server.issuer}/device?user_code={device['user_code']}", diag
    assert device["expires_in"] == 600 and device["interval"] == 5, diag
    assert device["device_code_length"] >= 43, diag
    # A public client (auth method none): no Authorization header except the bearer token at userinfo.
    for request in result["rp_requests"]:
        expected = "Bearer" if request["url"] == discovery["userinfo_endpoint"] else None
        assert request.get("auth") == expected, (request, diag)
    (initiation,) = [r for r in result["rp_requests"] if r["url"] == discovery["device_authorization_endpoint"]]
    assert initiation["status"] == 200 and {"client_id", "scope"} <= set(initiation["params"]), diag


def assert_page_walk(result: dict[str, Any], decision: str, diag: str) -> None:
    page = result["page"]
    assert page["seen"] == {"code": 1, "login": 1, "consent": 1}, diag
    steps = page["steps"]
    kinds = [step.get("kind") for step in steps]
    # The decision is answered with the result page, or with a redirect to it (post/redirect/get).
    assert kinds in (["code", "login", "consent", "done"], ["code", "login", "consent", "redirect", "done"]), diag
    code_step, login_step, consent_step, done_step = steps[0], steps[1], steps[2], steps[-1]
    if kinds[3] == "redirect":
        assert steps[3]["request"] == "POST /device" and steps[3]["status"] in (302, 303), diag
        assert steps[4]["request"].startswith("GET /device"), diag
    # verification_uri_complete prefills the code; the page binds CSRF to its /device cookie.
    assert code_step["kind"] == "code" and code_step["prefilled_user_code"] == result["device_authorization"][
        "user_code"], diag
    assert any(c.startswith("bastion_device;") and "Path=/device" in c for c in code_step["set_cookie"]), diag
    assert login_step["kind"] == "login" and {"user_code", "csrf_token"} <= set(login_step["form_fields"]), diag
    assert consent_step["kind"] == "consent" and consent_step["shows_user_code"] is True, diag
    assert "TV" in consent_step["title"], diag
    assert any(c.startswith("bastion_session;") for c in login_step["set_cookie"] + consent_step["set_cookie"]), diag
    assert done_step["kind"] == "done", diag
    expected = "Device connected" if decision == "allow" else "Request denied"
    assert done_step["heading"] == expected, diag


def test_openid_client_device_flow_completes(server: LiveServer, node_peers: Path) -> None:
    code, result, diag = run_device_flow(server, node_peers, "approve")
    assert code == 0, diag
    assert result["openid_client"].startswith("6."), diag
    assert_device_authorization(server, result, diag)
    assert_page_walk(result, "allow", diag)

    # openid-client polled, was told authorization_pending, kept the interval (never slow_down),
    # and received tokens on the first poll after the approval (normally the second poll).
    polls = result["token_polls"]
    assert len(polls) >= 2, diag
    assert [(p["status"], p["error"]) for p in polls] == [(400, "authorization_pending")] * (len(polls) - 1) + [
        (200, None)], diag
    assert polls[0]["at_ms"] >= 4500, diag
    assert all(b["at_ms"] - a["at_ms"] >= 4500 for a, b in itertools.pairwise(polls)), diag
    assert polls[0]["at_ms"] < result["page"]["answered_at_ms"], diag  # the user answered after the first poll

    grant = result["grant"]
    assert grant["rejected"] is False, diag
    assert grant["has_access_token"] and grant["has_id_token"] and grant["has_refresh_token"], diag
    assert grant["token_type"].lower() == "bearer", diag
    assert set(grant["scope"].split()) == set(SCOPE.split()), diag
    # The ID token passed openid-client's validation (and its signature check against jwks_uri).
    claims = grant["id_token_claims"]
    assert claims["sub"], diag
    assert claims["iss"] == server.issuer and claims["aud"] in ("tv", ["tv"]), diag
    assert any(r["url"] == result["discovery"]["jwks_uri"] for r in result["rp_requests"]), diag
    # fetchUserInfo checked the subject itself; check it once more here.
    assert result["userinfo"]["sub"] == claims["sub"], diag
    assert result["userinfo"].get("name") == "Alice Liddell", diag

    # The device code is single use.
    reuse = result["reuse"]
    assert reuse["rejected"] is True, diag
    assert reuse["error"]["code"] == "OAUTH_RESPONSE_BODY_ERROR" and reuse["error"]["error"] == "invalid_grant", diag


def test_openid_client_device_flow_denied(server: LiveServer, node_peers: Path) -> None:
    code, result, diag = run_device_flow(server, node_peers, "deny")
    assert code == 0, diag
    assert_device_authorization(server, result, diag)
    assert_page_walk(result, "deny", diag)
    # Normally one poll (the user denied within the first interval); a slow machine may add pending ones.
    polls = result["token_polls"]
    assert [(p["status"], p["error"]) for p in polls] == [(400, "authorization_pending")] * (len(polls) - 1) + [
        (400, "access_denied")], diag
    grant = result["grant"]
    assert grant["rejected"] is True, diag
    assert grant["error"]["code"] == "OAUTH_RESPONSE_BODY_ERROR", diag
    assert grant["error"]["status"] == 400 and grant["error"]["error"] == "access_denied", diag
