"""Discovery metadata, JWKS, and per-client ID-token algorithms."""

from __future__ import annotations

import httpx
import pytest

from bastion.core import jose
from bastion.core.models import Client
from bastion.core.provider import Provider
from bastion.core.secrets import hash_secret
from tests.conftest import ISSUER
from tests.web.flow import Flow


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"])
async def test_metadata_is_complete_and_truthful(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    meta = response.json()
    assert meta["issuer"] == ISSUER
    for name in ("authorization", "token", "userinfo", "end_session"):
        assert meta[f"{name}_endpoint"].startswith(ISSUER)
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert "openid" in meta["scopes_supported"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post", "none"}
    assert set(meta["id_token_signing_alg_values_supported"]) == {"RS256", "ES256", "EdDSA"}
    assert "none" not in meta["id_token_signing_alg_values_supported"]
    assert {"sub", "email", "name", "address", "phone_number"} <= set(meta["claims_supported"])
    # Every advertised endpoint answers (not 404).
    for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "end_session_endpoint"):
        assert (await http.get(meta[key].removeprefix(ISSUER))).status_code != 404


async def test_jwks_has_public_keys_only(http: httpx.AsyncClient) -> None:
    response = await http.get("/jwks")
    assert response.headers["access-control-allow-origin"] == "*"
    keys = response.json()["keys"]
    assert {k["alg"] for k in keys} == {"RS256", "ES256", "EdDSA"}
    for key in keys:
        assert key["use"] == "sig" and key["kid"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
    rsa = next(k for k in keys if k["kty"] == "RSA")
    assert len(jose.b64url_decode(rsa["n"])) * 8 >= 2048


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
async def test_id_token_uses_the_client_registered_algorithm(flow: Flow, provider: Provider, alg: str) -> None:
    await provider.store.create_client(Client(
        client_id=f"app-{alg}", client_name="Alg App", redirect_uris=("https://app.example/cb",),
        secret_hash=hash_secret("s" * 40), id_token_signed_response_alg=alg, created_at=provider.now()))
    req = flow.request(client_id=f"app-{alg}")
    callback = await flow.run(req)
    response = await flow.exchange(callback["code"], req.verifier, client_id=f"app-{alg}", secret="s" * 40)
    token = response.json()["id_token"]
    verified = jose.verify(token, provider.keys.verification_keys, [alg])
    assert verified.header["alg"] == alg and verified.claims["aud"] == f"app-{alg}"
