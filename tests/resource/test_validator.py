"""`bastion.resource.TokenValidator` against the real provider (its JWKS over HTTP), and forgeries."""

from __future__ import annotations

import time

import httpx
import pytest

from bastion.core import jose
from bastion.core.keyring import refresh_keys, rotate_keys
from bastion.core.keys import generate_signing_key
from bastion.core.models import Client
from bastion.core.provider import Provider
from bastion.core.secrets import hash_secret
from bastion.resource import InsufficientScope, InvalidToken, TokenValidator
from tests.conftest import ISSUER

API = "https://api.example/orders"
S = "s" * 40


@pytest.fixture
async def service(provider: Provider) -> None:
    await provider.store.create_client(Client(
        client_id="svc", client_name="Service", redirect_uris=(), grant_types=("client_credentials",),
        secret_hash=hash_secret(S), scope=("orders:read", "orders:write"), resources=(API,),
        created_at=provider.now()))


async def token(http: httpx.AsyncClient, **form: str) -> str:
    response = await http.post("/token", data={"grant_type": "client_credentials", "resource": API, **form},
                               auth=("svc", S))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def test_a_genuine_token_validates_with_discovery_and_a_cached_jwks(
        http: httpx.AsyncClient, rs_http: httpx.AsyncClient, service: None, fetches: list[str]) -> None:
    validator = TokenValidator(ISSUER, API, http=rs_http)
    access = await validator.validate(await token(http, scope="orders:read"))
    assert access.subject == "svc" and access.client_id == "svc" and access.scopes == {"orders:read"}
    access.require_scopes("orders:read")
    with pytest.raises(InsufficientScope):
        access.require_scopes("orders:write")
    await validator.validate(await token(http))
    assert fetches == ["/.well-known/openid-configuration", "/jwks"]  # cached after the first


async def test_wrong_audience_issuer_expiry_and_typ(http: httpx.AsyncClient, rs_http: httpx.AsyncClient,
                                                    service: None, provider: Provider) -> None:
    good = await token(http)
    with pytest.raises(InvalidToken, match="audience"):
        await TokenValidator(ISSUER, "https://api.example/other", http=rs_http).validate(good)
    later = time.time() + 600 + 31
    with pytest.raises(InvalidToken, match="expired"):
        await TokenValidator(ISSUER, API, http=rs_http, clock=lambda: later).validate(good)
    key = provider.keys.signing_key("RS256")
    claims = {"iss": ISSUER, "aud": API, "sub": "x", "client_id": "svc", "jti": "j1", "exp": int(time.time()) + 60,
              "iat": int(time.time())}
    id_token_like = jose.sign(claims, key.private_key, "RS256", key.kid, typ="JWT")
    with pytest.raises(InvalidToken, match="type"):
        await TokenValidator(ISSUER, API, http=rs_http).validate(id_token_like)
    other_issuer = jose.sign({**claims, "iss": "https://evil.example"}, key.private_key, "RS256", key.kid,
                             typ="at+jwt")
    with pytest.raises(InvalidToken, match="issuer"):
        await TokenValidator(ISSUER, API, http=rs_http).validate(other_issuer)
    # RFC 9068 §2.2: every one of its claims is mandatory; a token without jti is not an RFC 9068 token.
    assert (await TokenValidator(ISSUER, API, http=rs_http).validate(
        jose.sign(claims, key.private_key, "RS256", key.kid, typ="at+jwt"))).subject == "x"
    no_jti = jose.sign({k: v for k, v in claims.items() if k != "jti"}, key.private_key, "RS256", key.kid,
                       typ="at+jwt")
    with pytest.raises(InvalidToken, match="jti"):
        await TokenValidator(ISSUER, API, http=rs_http).validate(no_jti)
    lenient = TokenValidator(ISSUER, API, http=rs_http, required_claims=("iss", "exp", "aud", "sub", "iat"))
    assert (await lenient.validate(no_jti)).client_id == "svc"


async def test_forged_tokens_are_refused(http: httpx.AsyncClient, rs_http: httpx.AsyncClient, service: None,
                                         provider: Provider) -> None:
    validator = TokenValidator(ISSUER, API, http=rs_http, refetch_interval=3600)
    good = await token(http)
    head, payload, sig = good.split(".")
    tampered = jose.b64url_decode(payload).replace(b'"svc"', b'"adm"')
    from bastion.core.secrets import b64url

    for forged in (f"{head}.{b64url(tampered)}.{sig}", f"{head}.{payload}.", "eyJhbGciOiJub25lIn0.e30.", "x.y.z"):
        with pytest.raises(InvalidToken):
            await validator.validate(forged)
    # An attacker's key under our kid, with the attacker's key embedded in the header: still refused.
    attacker = generate_signing_key("RS256", provider.now())
    kid = provider.keys.signing_key("RS256").kid
    claims = {"iss": ISSUER, "aud": API, "sub": "svc", "exp": int(time.time()) + 60, "iat": int(time.time())}
    with pytest.raises(InvalidToken):
        await validator.validate(jose.sign(claims, attacker.private_key, "RS256", kid, typ="at+jwt"))


async def test_rotation_is_followed_and_unknown_kids_are_rate_limited(
        http: httpx.AsyncClient, rs_http: httpx.AsyncClient, service: None, provider: Provider,
        fetches: list[str]) -> None:
    now = [time.time()]
    validator = TokenValidator(ISSUER, API, http=rs_http, clock=lambda: now[0], refetch_interval=30)
    await validator.validate(await token(http))
    await rotate_keys(provider.store, provider.secret, provider.settings, provider.now(), ("RS256",))
    await refresh_keys(provider)
    rotated = await token(http)
    # Within the refetch interval, an unknown kid does not reach the provider...
    with pytest.raises(InvalidToken, match="unknown"):
        await validator.validate(rotated)
    jwks_fetches = fetches.count("/jwks")
    attacker = generate_signing_key("ES256", provider.now())
    for i in range(20):
        spray = jose.sign({"sub": "x"}, attacker.private_key, "ES256", f"random-{i}", typ="at+jwt")
        with pytest.raises(InvalidToken):
            await validator.validate(spray)
    assert fetches.count("/jwks") == jwks_fetches  # a kid spray costs the provider nothing
    # ...after it, one refetch picks up the new key.
    now[0] += 31
    assert (await validator.validate(rotated)).subject == "svc"
    assert fetches.count("/jwks") == jwks_fetches + 1


async def test_metadata_for_another_issuer_is_refused(rs_http: httpx.AsyncClient) -> None:
    with pytest.raises(InvalidToken, match="metadata"):
        await TokenValidator(ISSUER + "/", API, http=rs_http).validate("a.b.c")  # must match exactly


async def test_concurrent_first_validations_all_succeed(http: httpx.AsyncClient, rs_http: httpx.AsyncClient,
                                                        service: None) -> None:
    import asyncio

    validator = TokenValidator(ISSUER, API, http=rs_http)
    good = await token(http)
    results = await asyncio.gather(*(validator.validate(good) for _ in range(10)))
    assert all(r.subject == "svc" for r in results)
