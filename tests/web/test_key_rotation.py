"""Key rotation reaches running servers; tokens signed before it stay valid."""

from __future__ import annotations

import httpx

from bastion.core import jose
from bastion.core.keyring import refresh_keys, rotate_keys
from bastion.core.provider import Provider
from tests.web.flow import Flow


async def test_rotation_is_picked_up_and_old_tokens_still_verify(
        flow: Flow, http: httpx.AsyncClient, provider: Provider) -> None:
    _, before = await flow.tokens()
    old_kid = jose.verify(before["id_token"], provider.keys.verification_keys, ["RS256"]).header["kid"]
    unchanged = provider.keys
    assert not await refresh_keys(provider)  # nothing changed yet
    assert provider.keys is unchanged  # nothing decrypted again (an RSA key takes ~36 ms to load)

    retiring = provider.keys.signing_key("RS256")
    await rotate_keys(provider.store, provider.secret, provider.settings, provider.now(), ("RS256",))
    assert await refresh_keys(provider)
    # Keys already loaded are kept (with their new retirement time), only the new one is decrypted.
    kept = next(k for k in provider.keys.keys if k.kid == retiring.kid)
    assert kept.private_key is retiring.private_key and kept.retire_at is not None
    assert provider.keys.signing_key("RS256").kid != retiring.kid

    published = {k["kid"] for k in (await http.get("/jwks")).json()["keys"]}
    req = flow.request()
    callback = await flow.run(req, expect_login=False, expect_consent=False)
    after = (await flow.exchange(callback["code"], req.verifier)).json()
    new_kid = jose.verify(after["id_token"], provider.keys.verification_keys, ["RS256"]).header["kid"]
    assert new_kid != old_kid and {old_kid, new_kid} <= published
    # The access token signed by the retiring key is still accepted until it expires.
    info = await http.get("/userinfo", headers={"Authorization": f"Bearer {before['access_token']}"})
    assert info.status_code == 200


async def test_access_token_algorithm_is_configurable(flow: Flow, provider: Provider) -> None:
    provider.settings.access_token_alg = "ES256"
    _, body = await flow.tokens()
    verified = jose.verify(body["access_token"], provider.keys.verification_keys, ["ES256"], typ="at+jwt")
    assert verified.header["alg"] == "ES256"
    assert (await flow.http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})).json()
