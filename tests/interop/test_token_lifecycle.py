"""Interop: the token lifecycle as node's openid-client (v6) sees it against a real `bastion serve`.

tests/interop/token_lifecycle.mjs drives, with openid-client's own grant functions:
refresh-token rotation and reuse detection (refreshTokenGrant), the client credentials grant with
a resource indicator (clientCredentialsGrant; the JWT access token is also checked the way an
oauth4webapi resource server would, RFC 9068), introspection (tokenIntrospection, RFC 7662) and
revocation (tokenRevocation, RFC 7009). openid-client is told to verify every ID token's signature
(enableNonRepudiationChecks), refreshed ones included.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.node_driver import run_node
from tests.live_server import LiveServer, live_server

pytestmark = pytest.mark.interop

SECRET = "lifecycle-secret-" + "0123456789abcdef" * 3  # >= 32 characters
USER_SCOPE = {"openid", "profile", "email", "offline_access"}
RESOURCE = "https://api.example/orders"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One provider with three extra clients: two that get refresh tokens (one per user scenario,
    so a family revoked by one cannot disturb the other) and a client-credentials service."""
    with live_server(tmp_path_factory.mktemp("bastion-token-lifecycle")) as srv:
        for client_id in ("rp-rt", "rp-rev"):
            srv.cli("clients", "create", "--client-id", client_id, "--secret", SECRET,
                    "--redirect-uri", srv.redirect_uri, "--grant-type", "authorization_code",
                    "--grant-type", "refresh_token", "--scope", " ".join(sorted(USER_SCOPE)),
                    "--name", f"Lifecycle {client_id}")
        srv.cli("clients", "create", "--client-id", "svc", "--secret", SECRET,
                "--grant-type", "client_credentials", "--scope", "orders:read orders:write",
                "--resource", RESOURCE, "--name", "Orders service")
        yield srv


def run_lifecycle(server: LiveServer, peers: Path, scenario: str, **env: str) -> tuple[int, dict[str, Any], str]:
    return run_node("token_lifecycle.mjs", scenario, server, peers, {"RP_CLIENT_SECRET": SECRET, **env})


def user_env(server: LiveServer, client_id: str) -> dict[str, str]:
    return {
        "RP_CLIENT_ID": client_id,
        "RP_REDIRECT_URI": server.redirect_uri,
        "RP_USERNAME": server.username,
        "RP_PASSWORD": server.password,
    }


def assert_oauth_error(outcome: dict[str, Any], error: str, diag: str) -> None:
    """openid-client threw because the endpoint answered 400 with this OAuth error code."""
    assert outcome["rejected"] is True, diag
    assert outcome["error"]["code"] == "OAUTH_RESPONSE_BODY_ERROR", diag
    assert outcome["error"]["status"] == 400, diag
    assert outcome["error"]["error"] == error, diag


def introspected(outcome: dict[str, Any], diag: str) -> dict[str, Any]:
    assert outcome["rejected"] is False, diag
    return dict(outcome["value"])


def calls(result: dict[str, Any], endpoint: str) -> list[dict[str, Any]]:
    return [r for r in result["rp_requests"] if r["url"] == result["discovery"][endpoint]]


def test_refresh_rotation_and_reuse_detection(server: LiveServer, node_peers: Path) -> None:
    code, result, diag = run_lifecycle(server, node_peers, "refresh-rotation", **user_env(server, "rp-rt"))
    assert code == 0, diag
    assert result["openid_client"].startswith("6."), diag
    assert result["pages_seen"] == {"login": 1, "consent": 1}, diag

    original = result["code_grant"]
    assert original["has_refresh_token"] and original["has_id_token"], diag
    assert "offline_access" in original["scope"].split(), diag
    sub = original["id_token_claims"]["sub"]
    assert sub, diag

    # Two refreshes, each with a new refresh token and a new ID token that openid-client validated
    # (claims and signature) before returning; OIDC Core §12.2: same iss, sub, aud, azp, original
    # auth_time, fresh iat.
    refreshes = [result["refresh_1"], result["refresh_2"]]
    for refreshed in refreshes:
        assert refreshed["has_refresh_token"] and refreshed["has_access_token"], diag
        assert refreshed["has_id_token"], diag
        claims = refreshed["id_token_claims"]
        for claim in ("iss", "sub", "aud", "azp", "auth_time"):
            assert claims.get(claim) == original["id_token_claims"].get(claim), (claim, diag)
        assert claims["sub"] == sub, diag
    assert result["waited_ms"] >= 2100, diag
    assert refreshes[1]["id_token_claims"]["iat"] > original["id_token_claims"]["iat"], diag

    # Rotation: three different refresh tokens (and access tokens).
    assert result["rotation"]["all_distinct"] is True, diag
    assert len(set(result["rotation"]["refresh_tokens_fp"])) == 3, diag
    assert len({original["access_token_fp"], *(r["access_token_fp"] for r in refreshes)}) == 3, diag

    # Replaying the first refresh token after the 2 s grace is refused, and revokes the family:
    # the newest refresh token is refused too, and it and the newest access token are inactive.
    assert_oauth_error(result["reuse_first"], "invalid_grant", diag)
    assert_oauth_error(result["newest_after_reuse"], "invalid_grant", diag)
    assert introspected(result["introspect_newest_refresh_after_reuse"], diag) == {"active": False}, diag
    assert introspected(result["introspect_newest_access_after_reuse"], diag) == {"active": False}, diag

    token_calls = calls(result, "token_endpoint")
    assert [r["status"] for r in token_calls] == [200, 200, 200, 400, 400], diag
    assert all(r["auth"] == "Basic" for r in token_calls), diag
    assert all("refresh_token" in r["params"] for r in token_calls[1:]), diag
    # The ID token signatures were checked against the provider's keys.
    jwks_uri = result["discovery"]["jwks_uri"]
    assert any(r["method"] == "GET" and r["url"] == jwks_uri for r in result["rp_requests"]), diag


def test_client_credentials_with_resource_and_introspection(server: LiveServer, node_peers: Path) -> None:
    code, result, diag = run_lifecycle(
        server, node_peers, "client-credentials", RP_CLIENT_ID="svc", CC_SCOPE="orders:read",
        CC_RESOURCE=RESOURCE, CC_FORBIDDEN_SCOPE="orders:admin", CC_FORBIDDEN_RESOURCE="https://api.example/billing",
    )
    assert code == 0, diag
    discovery = result["discovery"]
    assert discovery["introspection_endpoint"] and discovery["revocation_endpoint"], diag
    assert "client_credentials" in discovery["grant_types_supported"], diag

    token = result["token"]
    assert token["token_type"] == "bearer", diag
    assert token["scope"] == "orders:read", diag
    assert token["has_access_token"] and not token["has_refresh_token"] and not token["has_id_token"], diag
    (request,) = [r for r in calls(result, "token_endpoint") if r["status"] == 200]
    assert request["auth"] == "Basic" and {"scope", "resource"} <= set(request["params"]), diag

    # RFC 9068 access token for the requested resource, accepted by oauth4webapi as a resource server.
    jwt = result["access_token_jwt"]
    assert jwt["header"]["typ"].lower() in ("at+jwt", "application/at+jwt"), diag
    assert jwt["payload"]["aud"] in (RESOURCE, [RESOURCE]), diag
    assert jwt["payload"]["sub"] == "svc" and jwt["payload"]["client_id"] == "svc", diag
    assert result["resource_server_validation"]["rejected"] is False, diag

    # Introspection (RFC 7662 §2.2) of the access token, then of garbage.
    info = introspected(result["introspect_access"], diag)
    assert info["active"] is True, diag
    assert info["client_id"] == "svc", diag
    assert info["scope"] == "orders:read", diag
    assert info["aud"] in (RESOURCE, [RESOURCE]), diag
    assert info["sub"] == "svc" and info["iss"] == discovery["issuer"], diag
    assert info["exp"] > info["iat"], diag
    for outcome in result["introspect_garbage"].values():
        assert introspected(outcome, diag) == {"active": False}, diag
    assert all(r["auth"] == "Basic" and r["status"] == 200 for r in calls(result, "introspection_endpoint")), diag

    # RFC 8707 invalid_target for a resource the client may not use; invalid_scope likewise.
    assert_oauth_error(result["forbidden_resource"], "invalid_target", diag)
    assert_oauth_error(result["forbidden_scope"], "invalid_scope", diag)

    # Revoking the (JWT) access token makes introspection report it inactive at once.
    assert result["revoke_access"]["rejected"] is False, diag
    assert introspected(result["introspect_access_after_revoke"], diag) == {"active": False}, diag


def test_introspection_and_refresh_token_revocation(server: LiveServer, node_peers: Path) -> None:
    code, result, diag = run_lifecycle(server, node_peers, "introspect-revoke", **user_env(server, "rp-rev"))
    assert code == 0, diag
    granted = result["code_grant"]
    assert granted["has_refresh_token"], diag
    sub = granted["id_token_claims"]["sub"]

    access = introspected(result["introspect_access"], diag)
    assert access["active"] is True, diag
    assert access["client_id"] == "rp-rev", diag
    assert set(access["scope"].split()) == USER_SCOPE, diag
    assert access["sub"] == sub and access["iss"] == result["discovery"]["issuer"], diag
    assert access["username"] == server.username, diag

    refresh = introspected(result["introspect_refresh"], diag)
    assert refresh["active"] is True, diag
    assert refresh["client_id"] == "rp-rev" and refresh["sub"] == sub, diag
    assert set(refresh["scope"].split()) == USER_SCOPE, diag

    for outcome in result["introspect_garbage"].values():
        assert introspected(outcome, diag) == {"active": False}, diag

    # RFC 7009: revocation answers 200; the refresh token and (its family) the access token are
    # dead at once, and a refresh with it is invalid_grant.
    assert result["revoke_refresh"]["rejected"] is False, diag
    assert introspected(result["introspect_refresh_after_revoke"], diag) == {"active": False}, diag
    assert introspected(result["introspect_access_after_revoke"], diag) == {"active": False}, diag
    assert_oauth_error(result["refresh_after_revoke"], "invalid_grant", diag)
    # §2.2: an invalid token is not an error.
    assert result["revoke_garbage"]["rejected"] is False, diag
    revocations = calls(result, "revocation_endpoint")
    assert [r["status"] for r in revocations] == [200, 200], diag
    assert all(r["auth"] == "Basic" for r in revocations), diag
