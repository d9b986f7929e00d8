"""The whole authorization code flow over HTTP, and the ID token checked against the JWKS."""

from __future__ import annotations

import time

import httpx

from bastion.core import jose
from bastion.core.tokens import at_hash
from tests.conftest import ISSUER, on_both_backends
from tests.web.flow import APP_REDIRECT, Flow

pytestmark = on_both_backends


def jwks_keys(jwks: dict) -> dict[str, tuple[str, jose.PublicKey]]:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    out: dict[str, tuple[str, jose.PublicKey]] = {}
    for jwk in jwks["keys"]:
        b = jose.b64url_decode
        key: jose.PublicKey
        if jwk["kty"] == "RSA":
            key = rsa.RSAPublicNumbers(int.from_bytes(b(jwk["e"])), int.from_bytes(b(jwk["n"]))).public_key()
        elif jwk["kty"] == "EC":
            key = ec.EllipticCurvePublicNumbers(int.from_bytes(b(jwk["x"])), int.from_bytes(b(jwk["y"])),
                                                ec.SECP256R1()).public_key()
        else:
            key = ed25519.Ed25519PublicKey.from_public_bytes(b(jwk["x"]))
        out[jwk["kid"]] = (jwk["alg"], key)
    return out


async def test_full_flow_discovery_to_userinfo(flow: Flow, http: httpx.AsyncClient) -> None:
    meta = (await http.get("/.well-known/openid-configuration")).json()
    assert meta["issuer"] == ISSUER
    assert meta["authorization_endpoint"] == f"{ISSUER}/authorize"
    req = flow.request()
    callback = await flow.run(req)
    assert callback["state"] == req.params["state"]
    assert callback["iss"] == ISSUER
    assert len(callback["code"]) >= 43  # 256 bits, base64url

    response = await flow.exchange(callback["code"], req.verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert set(body["scope"].split()) == {"openid", "profile", "email"}

    jwks = (await http.get(meta["jwks_uri"].removeprefix(ISSUER))).json()
    keys = jwks_keys(jwks)
    id_token = jose.verify(body["id_token"], keys, ["RS256"])
    assert id_token.header["alg"] == "RS256" and id_token.header["kid"] in keys
    claims = id_token.claims
    assert claims["iss"] == ISSUER and claims["aud"] == "app" and claims["azp"] == "app"
    assert claims["sub"] == "user-alice"
    assert claims["nonce"] == req.params["nonce"]
    assert claims["at_hash"] == at_hash(body["access_token"], "RS256")
    assert abs(claims["iat"] - time.time()) < 10 and claims["exp"] > claims["iat"]
    assert claims["auth_time"] <= claims["iat"]
    assert claims["amr"] == ["pwd"] and claims["acr"]

    access = jose.verify(body["access_token"], keys, ["RS256"], typ="at+jwt")
    assert access.header["typ"] == "at+jwt"
    for claim in ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"):
        assert claim in access.claims
    assert access.claims["client_id"] == "app"
    assert access.claims["exp"] - access.claims["iat"] == 600

    info = await http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200, info.text
    assert info.json() == {
        "sub": "user-alice", "name": "Alice Liddell", "given_name": "Alice", "family_name": "Liddell",
        "preferred_username": "alice", "updated_at": info.json()["updated_at"],
        "email": "alice@example.com", "email_verified": True,
    }


async def test_second_authorization_needs_neither_login_nor_consent(flow: Flow) -> None:
    first = await flow.tokens()
    assert first
    req = flow.request()
    callback = await flow.run(req, expect_login=False, expect_consent=False)
    assert callback["state"] == req.params["state"]
    assert (await flow.exchange(callback["code"], req.verifier)).status_code == 200


async def test_consent_is_asked_again_when_scopes_grow(flow: Flow) -> None:
    await flow.tokens(scope="openid")
    req = flow.request(scope="openid email")
    response = await flow.authorize(req)
    page = await flow.follow(response)
    assert 'value="allow"' in page.text and "email address" in page.text
    # Scope order is irrelevant, and a subset of what was granted needs no new consent.
    again = flow.request(scope="email openid")
    response = await flow.authorize(again)
    assert response.headers["location"].startswith("/interaction/")


async def test_form_post_response_mode(flow: Flow) -> None:
    await flow.tokens()
    req = flow.request(response_mode="form_post")
    response = await flow.authorize(req)
    assert response.status_code == 200
    assert f'action="{APP_REDIRECT}"' in response.text
    assert 'name="code"' in response.text and f'name="state" value="{req.params["state"]}"' in response.text
    assert f'name="iss" value="{ISSUER}"' in response.text
    assert "script-src 'nonce-" in response.headers["content-security-policy"]


async def test_authorize_by_post_redirects_with_303(flow: Flow) -> None:
    req = flow.request()
    response = await flow.authorize(req, method="POST")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/interaction/")
