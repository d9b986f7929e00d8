"""ID token validation (OpenID Connect Core §3.1.3.7): `validate_id_token` as a pure function with
forged tokens, then the same rules through `Client.finish_authorization` (JWKS rotation, the
algorithms discovery and the configuration allow, headers that point at an attacker's key)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bastion.client import InvalidIDToken, InvalidResponse
from bastion.client.id_token import Expectations, UnknownKey, at_hash, validate_id_token
from bastion.core import jose
from tests.client.forge import (
    ACCESS_TOKEN,
    ALGS,
    ATTACKER,
    CLIENT_ID,
    ISSUER,
    KEYS,
    NONCE,
    NOW,
    Clock,
    FakeProvider,
    SigningKey,
    b64,
    b64json,
    callback,
    client,
    discovery,
    id_claims,
    id_token,
    json_response,
    jwks,
    key_map,
    login,
    raw_token,
    token_body,
)


def expect(**overrides: Any) -> Expectations:
    values: dict[str, Any] = {"issuer": ISSUER, "client_id": CLIENT_ID, "algorithms": ALGS, "now": NOW,
                              "nonce": NONCE}
    return Expectations(**{**values, **overrides})


def validate(token: Any, **overrides: Any) -> dict[str, Any]:
    return validate_id_token(token, key_map(), expect(**overrides))


def half_hash(token: str, hash_name: str) -> str:
    digest = hashlib.new(hash_name, token.encode()).digest()
    return b64(digest[: len(digest) // 2])


# --- signatures and algorithms ------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_valid_token_passes(alg: str) -> None:
    claims = validate(id_token(alg=alg))
    assert claims["sub"] == "alice" and claims["nonce"] == NONCE


def test_hand_made_token_is_accepted() -> None:
    """The hand-assembled tokens of the forgery tests are acceptable when nothing is forged."""
    key = KEYS["RS256"]
    assert validate(raw_token({"alg": "RS256", "kid": key.kid}, id_claims(), key.private))["sub"] == "alice"


@pytest.mark.parametrize("alg", ALGS)
def test_payload_changed_after_signing_is_refused(alg: str) -> None:
    header, _, sig = id_token(alg=alg).split(".")
    tampered = f"{header}.{b64json(id_claims(sub='mallory'))}.{sig}"
    with pytest.raises(InvalidIDToken):
        validate(tampered)


@pytest.mark.parametrize("alg", ALGS)
def test_signature_of_another_key_is_refused(alg: str) -> None:
    forged = id_token(alg=alg, key=SigningKey(KEYS[alg].kid, alg, ATTACKER[alg].private))
    with pytest.raises(InvalidIDToken):
        validate(forged)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
def test_unsigned_token_is_refused(alg: str) -> None:
    token = raw_token({"alg": alg, "kid": KEYS["RS256"].kid}, id_claims(), signature_bytes=b"")
    assert token.endswith(".")
    with pytest.raises(InvalidIDToken):
        validate(token)
    with pytest.raises(InvalidIDToken):  # even when the caller lists it
        validate(token, algorithms=(*ALGS, alg))


@pytest.mark.parametrize("secret", ["pem", "jwk"])
def test_hs256_with_the_public_key_as_secret_is_refused(secret: str) -> None:
    key = KEYS["RS256"]
    hmac_key = (key.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                if secret == "pem" else json.dumps(key.jwk).encode())
    signing_input = f"{b64json({'alg': 'HS256', 'kid': key.kid})}.{b64json(id_claims())}"
    token = f"{signing_input}.{b64(hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest())}"
    with pytest.raises(InvalidIDToken):
        validate(token)
    with pytest.raises(InvalidIDToken):
        validate(token, algorithms=("HS256", *ALGS))


def test_header_alg_not_matching_the_key_is_refused() -> None:
    """An RSA kid with `alg: ES256` (signed by an EC key): the key decides, not the header."""
    token = raw_token({"alg": "ES256", "kid": KEYS["RS256"].kid}, id_claims(), KEYS["ES256"].private)
    with pytest.raises(InvalidIDToken):
        validate(token)


def test_unknown_kid_raises_unknown_key() -> None:
    token = id_token(key=ATTACKER["RS256"])
    with pytest.raises(UnknownKey):
        validate(token)
    assert issubclass(UnknownKey, InvalidIDToken)


def test_token_without_kid_is_refused() -> None:
    token = raw_token({"alg": "RS256"}, id_claims(), KEYS["RS256"].private)
    with pytest.raises(InvalidIDToken):
        validate(token)


def test_algorithm_not_in_expectations_is_refused() -> None:
    token = id_token(alg="RS256")
    with pytest.raises(InvalidIDToken):
        validate(token, algorithms=("ES256",))
    assert validate(id_token(alg="ES256"), algorithms=("ES256",))["sub"] == "alice"


@pytest.mark.parametrize("header", ["jwk", "jku", "x5u"])
def test_key_named_by_the_token_itself_is_ignored(header: str) -> None:
    """Signed by an attacker key the token embeds or points at: only the JWKS we hold counts."""
    evil = ATTACKER["RS256"]
    pointer: Any = evil.jwk if header == "jwk" else f"https://evil.example/{header}"
    for kid in (evil.kid, KEYS["RS256"].kid):
        token = raw_token({"alg": "RS256", "kid": kid, header: pointer}, id_claims(), evil.private)
        with pytest.raises(InvalidIDToken):
            validate(token)


def test_unknown_crit_header_is_refused() -> None:
    key = KEYS["RS256"]
    token = raw_token({"alg": "RS256", "kid": key.kid, "crit": ["exp"], "exp": 1}, id_claims(), key.private)
    with pytest.raises(InvalidIDToken):
        validate(token)


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "logout+jwt"])
def test_token_of_another_type_is_refused(typ: str) -> None:
    with pytest.raises(InvalidIDToken):
        validate(id_token(typ=typ))


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "application/jwt"])
def test_id_token_types_pass(typ: str | None) -> None:
    key = KEYS["ES256"]
    header = {"alg": "ES256", "kid": key.kid} | ({} if typ is None else {"typ": typ})
    assert validate(raw_token(header, id_claims(), key.private))["sub"] == "alice"


# --- malformed tokens: InvalidIDToken, never ValueError or KeyError -----------------------------


def _malformed() -> dict[str, Any]:
    key = KEYS["RS256"]
    header = b64json({"alg": "RS256", "kid": key.kid})
    good = id_token()
    not_utf8 = b64(b"\xff\xfe")
    return {
        "two parts": ".".join(good.split(".")[:2]),
        "four parts": good + ".AAAA",
        "empty": "",
        "dots only": "..",
        "not base64": f"{header}.!!!.###",
        "padded base64": good.split(".")[0] + "==." + ".".join(good.split(".")[1:]),
        "header not json": f"{b64(b'{nope')}.{b64json(id_claims())}.AAAA",
        "header is a list": raw_token(["RS256"], id_claims(), key.private),  # type: ignore[arg-type]
        "payload is a list": raw_token({"alg": "RS256", "kid": key.kid}, [id_claims()], key.private),
        "payload is a string": raw_token({"alg": "RS256", "kid": key.kid}, "alice", key.private),
        "payload not json": f"{header}.{not_utf8}.AAAA",
        "non-ascii": good + "é",
        "huge": "a" * 20000 + "." + "b" * 10 + ".c",
        "bytes": good.encode(),
        "none": None,
        "number": 42,
        "kid not a string": raw_token({"alg": "RS256", "kid": ["op-rsa"]}, id_claims(), key.private),
        "alg not a string": raw_token({"alg": ["RS256"], "kid": key.kid}, id_claims(), key.private),
    }


@pytest.mark.parametrize("case", list(_malformed()))
def test_malformed_token_is_an_invalid_id_token(case: str) -> None:
    with pytest.raises(InvalidIDToken):
        validate(_malformed()[case])


# --- claims -------------------------------------------------------------------------------------


def test_expired_beyond_leeway_is_refused_and_within_leeway_passes() -> None:
    with pytest.raises(InvalidIDToken, match="expired"):
        validate(id_token(id_claims(exp=int(NOW) - 61)), leeway=60)
    assert validate(id_token(id_claims(exp=int(NOW) - 59)), leeway=60)["sub"] == "alice"
    with pytest.raises(InvalidIDToken):
        validate(id_token(id_claims(exp=int(NOW) - 1)), leeway=0)


def test_iat_in_the_future_is_refused_and_within_leeway_passes() -> None:
    with pytest.raises(InvalidIDToken, match="future"):
        validate(id_token(id_claims(iat=int(NOW) + 120)))
    assert validate(id_token(id_claims(iat=int(NOW) + 30)))["sub"] == "alice"


@pytest.mark.parametrize("claim, value", [
    ("exp", None), ("exp", "9999999999"), ("exp", True), ("exp", float("nan")),
    ("iat", None), ("iat", "0"), ("iat", float("nan")),
])
def test_missing_or_malformed_time_claims_are_refused(claim: str, value: Any) -> None:
    with pytest.raises(InvalidIDToken):
        validate(id_token(id_claims(**{claim: value})))


@pytest.mark.parametrize("iss", ["https://evil.example", ISSUER + "/", "https://OP.example", None, [ISSUER]])
def test_wrong_issuer_is_refused(iss: Any) -> None:
    with pytest.raises(InvalidIDToken, match="issuer"):
        validate(id_token(id_claims(iss=iss)))


@pytest.mark.parametrize("sub", [None, "", 42])
def test_missing_subject_is_refused(sub: Any) -> None:
    with pytest.raises(InvalidIDToken):
        validate(id_token(id_claims(sub=sub)))


def test_subject_must_be_the_expected_one_on_refresh() -> None:
    with pytest.raises(InvalidIDToken):
        validate(id_token(), subject="bob")
    assert validate(id_token(), subject="alice")["sub"] == "alice"


@pytest.mark.parametrize("aud", ["other-app", ["other-app"], [], None, CLIENT_ID.upper(), {CLIENT_ID: 1}])
def test_audience_without_our_client_id_is_refused(aud: Any) -> None:
    with pytest.raises(InvalidIDToken, match="aud"):
        validate(id_token(id_claims(aud=aud)))


def test_multiple_audiences_need_azp_naming_us() -> None:
    with pytest.raises(InvalidIDToken, match="azp"):
        validate(id_token(id_claims(aud=[CLIENT_ID, "other-app"])))
    with pytest.raises(InvalidIDToken, match="azp"):
        validate(id_token(id_claims(aud=[CLIENT_ID, "other-app"], azp="other-app")))
    claims = validate(id_token(id_claims(aud=[CLIENT_ID, "other-app"], azp=CLIENT_ID)))
    assert claims["azp"] == CLIENT_ID


def test_azp_naming_another_party_is_refused_with_one_audience() -> None:
    with pytest.raises(InvalidIDToken, match="azp"):
        validate(id_token(id_claims(azp="other-app")))
    assert validate(id_token(id_claims(aud=[CLIENT_ID])))["sub"] == "alice"


@pytest.mark.parametrize("nonce", [None, "nonce-other", NONCE + "x", 7])
def test_missing_or_wrong_nonce_is_refused_when_one_was_sent(nonce: Any) -> None:
    with pytest.raises(InvalidIDToken, match="nonce"):
        validate(id_token(id_claims(nonce=nonce)))


def test_nonce_is_not_required_when_none_was_sent() -> None:
    assert validate(id_token(id_claims(nonce=None)), nonce=None)["sub"] == "alice"


def test_at_hash_is_the_left_half_of_the_algorithms_hash() -> None:
    assert at_hash(ACCESS_TOKEN, "RS256") == half_hash(ACCESS_TOKEN, "sha256")
    assert at_hash(ACCESS_TOKEN, "ES256") == half_hash(ACCESS_TOKEN, "sha256")
    assert at_hash(ACCESS_TOKEN, "EdDSA") == half_hash(ACCESS_TOKEN, "sha512")
    assert len(at_hash(ACCESS_TOKEN, "EdDSA")) == 43 and len(at_hash(ACCESS_TOKEN, "RS256")) == 22


@pytest.mark.parametrize("alg, hash_name", [("RS256", "sha256"), ("ES256", "sha256"), ("EdDSA", "sha512")])
def test_correct_at_hash_passes(alg: str, hash_name: str) -> None:
    token = id_token(id_claims(at_hash=half_hash(ACCESS_TOKEN, hash_name)), alg)
    assert validate(token, access_token=ACCESS_TOKEN)["sub"] == "alice"


@pytest.mark.parametrize("alg, value", [
    ("RS256", half_hash("another-token", "sha256")),
    ("RS256", half_hash(ACCESS_TOKEN, "sha512")),
    ("EdDSA", half_hash(ACCESS_TOKEN, "sha256")),  # EdDSA hashes with SHA-512
    ("ES256", 12345),
])
def test_wrong_at_hash_is_refused(alg: str, value: Any) -> None:
    with pytest.raises(InvalidIDToken, match="at_hash"):
        validate(id_token(id_claims(at_hash=value), alg), access_token=ACCESS_TOKEN)


def test_auth_time_is_required_with_max_age() -> None:
    with pytest.raises(InvalidIDToken, match="auth_time"):
        validate(id_token(), max_age=300)
    with pytest.raises(InvalidIDToken, match="auth_time"):
        validate(id_token(), require_auth_time=True)
    with pytest.raises(InvalidIDToken, match="auth_time"):
        validate(id_token(id_claims(auth_time="recently")), max_age=300)


def test_auth_time_older_than_max_age_is_refused() -> None:
    with pytest.raises(InvalidIDToken, match="max_age"):
        validate(id_token(id_claims(auth_time=int(NOW) - 300 - 61)), max_age=300, leeway=60)
    assert validate(id_token(id_claims(auth_time=int(NOW) - 300)), max_age=300)["sub"] == "alice"


def test_auth_time_nan_is_refused() -> None:
    with pytest.raises(InvalidIDToken):
        validate(id_token(id_claims(auth_time=float("nan"))), max_age=300)


def test_weak_rsa_key_in_the_jwks_is_not_used() -> None:
    weak = SigningKey("weak", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    assert jose.key_from_jwk(weak.jwk) is None
    fake = FakeProvider(keys={"keys": [weak.jwk, KEYS["RS256"].jwk]})
    fake.on("/token", json_response(token_body(id_token(key=weak))))
    with client(fake) as rp, pytest.raises(InvalidIDToken):
        rp.finish_authorization(login(), callback())


# --- through the flow ---------------------------------------------------------------------------


def exchange(fake: FakeProvider, token: str, *, clock: Clock | None = None, **kwargs: Any) -> Any:
    fake.on("/token", json_response(token_body(token)))
    with client(fake, clock=clock, **kwargs) as rp:
        return rp.finish_authorization(login(), callback())


@pytest.mark.parametrize("alg", ALGS)
def test_valid_token_passes_through_the_flow(alg: str) -> None:
    tokens = exchange(FakeProvider(), id_token(alg=alg))
    assert tokens.subject == "alice" and tokens.access_token == ACCESS_TOKEN


@pytest.mark.parametrize("claims", [
    id_claims(nonce="nonce-other"), id_claims(nonce=None), id_claims(aud="other-app"),
    id_claims(iss="https://evil.example"), id_claims(exp=int(NOW) - 120),
    id_claims(at_hash=half_hash("another-token", "sha256")),
])
def test_bad_claims_are_refused_through_the_flow(claims: dict[str, Any]) -> None:
    with pytest.raises(InvalidIDToken):
        exchange(FakeProvider(), id_token(claims))


def test_correct_at_hash_passes_through_the_flow() -> None:
    token = id_token(id_claims(at_hash=half_hash(ACCESS_TOKEN, "sha512")), "EdDSA")
    assert exchange(FakeProvider(), token).subject == "alice"


def test_max_age_needs_a_recent_auth_time_through_the_flow() -> None:
    def finish(claims: dict[str, Any]) -> Any:
        fake = FakeProvider().on("/token", json_response(token_body(id_token(claims))))
        with client(fake) as rp:
            return rp.finish_authorization(login(max_age=300), callback())

    with pytest.raises(InvalidIDToken, match="auth_time"):
        finish(id_claims())
    with pytest.raises(InvalidIDToken, match="max_age"):
        finish(id_claims(auth_time=int(NOW) - 3600))
    assert finish(id_claims(auth_time=int(NOW) - 10)).subject == "alice"


def test_missing_id_token_for_an_openid_login_is_refused() -> None:
    with pytest.raises(InvalidResponse):
        exchange(FakeProvider(), None)  # type: ignore[arg-type]


def test_access_token_presented_as_id_token_is_refused_through_the_flow() -> None:
    with pytest.raises(InvalidIDToken):
        exchange(FakeProvider(), id_token(typ="at+jwt"))


def test_discovery_restricts_the_algorithms() -> None:
    fake = FakeProvider(discovery(id_token_signing_alg_values_supported=["ES256"]))
    with pytest.raises(InvalidIDToken):
        exchange(fake, id_token(alg="RS256"))
    assert exchange(fake, id_token(alg="ES256")).subject == "alice"


def test_configuration_restricts_the_algorithms() -> None:
    with pytest.raises(InvalidIDToken):
        exchange(FakeProvider(), id_token(alg="RS256"), algorithms=("ES256",))
    assert exchange(FakeProvider(), id_token(alg="ES256"), algorithms=("ES256",)).subject == "alice"


def test_configuration_without_a_supported_algorithm_is_refused() -> None:
    with pytest.raises(ValueError):
        exchange(FakeProvider(), id_token(), algorithms=("HS256", "none"))


def test_embedded_jwk_and_jku_are_neither_trusted_nor_fetched() -> None:
    evil = ATTACKER["RS256"]
    fake = FakeProvider()
    header = {"alg": "RS256", "kid": evil.kid, "jwk": evil.jwk, "jku": "https://evil.example/jwks",
              "x5u": "https://evil.example/cert"}
    with pytest.raises(InvalidIDToken):
        exchange(fake, raw_token(header, id_claims(), evil.private))
    assert all(r.url.host == "op.example" for r in fake.requests)


# --- key rotation: one refetch on an unknown kid, and no refetch storm ---------------------------

NEW = SigningKey("op-rsa-2", "RS256", ATTACKER["RS256"].private)  # the provider's next key


def rotation() -> tuple[FakeProvider, Clock]:
    """A provider whose JWKS changes to `NEW` after the first fetch."""
    fake = FakeProvider()
    fake.on("/jwks", json_response(jwks(KEYS["RS256"])), json_response(jwks(NEW)))
    return fake, Clock()


def test_rotated_key_is_found_with_exactly_one_refetch() -> None:
    fake, clock = rotation()
    with client(fake, clock=clock) as rp:
        fake.on("/token", json_response(token_body(id_token())))
        assert rp.finish_authorization(login(), callback()).subject == "alice"
        assert len(fake.hits("/jwks")) == 1
        clock.advance(60)
        fake.on("/token", json_response(token_body(id_token(id_claims(clock.now), key=NEW))))
        assert rp.finish_authorization(login(), callback()).subject == "alice"
        assert len(fake.hits("/jwks")) == 2
        fake.on("/token", json_response(token_body(id_token(id_claims(clock.now), key=NEW))))
        assert rp.finish_authorization(login(), callback()).subject == "alice"
        assert len(fake.hits("/jwks")) == 2  # the new key is kept


def test_kid_missing_after_the_refetch_is_refused() -> None:
    fake, clock = rotation()
    with client(fake, clock=clock) as rp:
        fake.on("/token", json_response(token_body(id_token())))
        rp.finish_authorization(login(), callback())
        clock.advance(60)
        fake.on("/token", json_response(token_body(id_token(id_claims(clock.now), key=ATTACKER["ES256"]))))
        with pytest.raises(InvalidIDToken):
            rp.finish_authorization(login(), callback())
        assert len(fake.hits("/jwks")) == 2


def test_unknown_kids_do_not_cause_a_refetch_storm() -> None:
    fake, clock = rotation()
    unknown = ATTACKER["ES256"]
    with client(fake, clock=clock) as rp:
        fake.on("/token", json_response(token_body(id_token())))
        rp.finish_authorization(login(), callback())
        clock.advance(60)
        fake.on("/token", json_response(token_body(id_token(id_claims(clock.now), key=unknown))))
        with pytest.raises(InvalidIDToken):
            rp.finish_authorization(login(), callback())
        assert len(fake.hits("/jwks")) == 2
        for _ in range(3):
            clock.advance(3)  # still within 10 s of the refetch
            with pytest.raises(UnknownKey):
                rp.finish_authorization(login(), callback())
        assert len(fake.hits("/jwks")) == 2
        clock.advance(5)  # 14 s after the refetch: one more is allowed
        with pytest.raises(UnknownKey):
            rp.finish_authorization(login(), callback())
        assert len(fake.hits("/jwks")) == 3


def test_unknown_kid_right_after_the_first_fetch_does_not_refetch() -> None:
    fake, clock = rotation()
    with client(fake, clock=clock) as rp, pytest.raises(UnknownKey):
        exchange_in(rp, fake, id_token(key=NEW))
    assert len(fake.hits("/jwks")) == 1


def exchange_in(rp: Any, fake: FakeProvider, token: str) -> Any:
    fake.on("/token", json_response(token_body(token)))
    return rp.finish_authorization(login(), callback())
