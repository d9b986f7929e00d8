"""Client authentication (RFC 6749 §2.3, OIDC Core §9, RFC 7523): what each method puts on the
wire, the private_key_jwt assertion checked with the public key, and the choice of method."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import unquote_plus

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bastion.client import ClientAuthentication
from bastion.client.auth import ASSERTION_TYPE
from bastion.core import jose
from tests.client.forge import (
    ATTACKER,
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    KEYS,
    NOW,
    REFRESH_TOKEN,
    FakeProvider,
    callback,
    client,
    form,
    id_token,
    json_response,
    login,
    token_body,
)

TRICKY_ID = "app 1:ü+%"
TRICKY_SECRET = "pa:ss%20wörd+€/=&"


def apply(auth: ClientAuthentication, now: float = NOW) -> tuple[dict[str, Any], dict[str, str]]:
    body: dict[str, Any] = {"grant_type": "client_credentials"}
    headers: dict[str, str] = {}
    auth.apply(body, headers, ISSUER, now)
    return body, headers


def basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    assert scheme == "Basic"
    user, colon, password = base64.b64decode(encoded, validate=True).decode("ascii").partition(":")
    assert colon and ":" not in password  # the only ':' is the separator
    return unquote_plus(user), unquote_plus(password)


def header_of(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


# --- what each method sends ---------------------------------------------------------------------


def test_basic_form_urlencodes_both_parts_before_base64() -> None:
    body, headers = apply(ClientAuthentication(TRICKY_ID, "client_secret_basic", TRICKY_SECRET))
    assert basic_credentials(headers["Authorization"]) == (TRICKY_ID, TRICKY_SECRET)
    raw = base64.b64decode(headers["Authorization"].split()[1]).decode("ascii")
    assert raw == "app+1%3A%C3%BC%2B%25:pa%3Ass%2520w%C3%B6rd%2B%E2%82%AC%2F%3D%26"
    assert body == {"grant_type": "client_credentials"}  # nothing in the form


def test_post_puts_the_credentials_in_the_form_only() -> None:
    body, headers = apply(ClientAuthentication(TRICKY_ID, "client_secret_post", TRICKY_SECRET))
    assert body == {"grant_type": "client_credentials", "client_id": TRICKY_ID, "client_secret": TRICKY_SECRET}
    assert headers == {}


def test_none_sends_only_the_client_id() -> None:
    body, headers = apply(ClientAuthentication(CLIENT_ID, "none"))
    assert body == {"grant_type": "client_credentials", "client_id": CLIENT_ID} and headers == {}


@pytest.mark.parametrize("alg", list(KEYS))
def test_private_key_jwt_assertion(alg: str) -> None:
    key = KEYS[alg]
    auth = ClientAuthentication.choose(CLIENT_ID, None, None, key.private, key.kid)
    body, headers = apply(auth, NOW + 0.7)
    assert headers == {}
    assert set(body) == {"grant_type", "client_id", "client_assertion_type", "client_assertion"}
    assert body["client_id"] == CLIENT_ID and body["client_assertion_type"] == ASSERTION_TYPE
    verified = jose.verify(body["client_assertion"], {key.kid: (alg, key.public)}, [alg])
    claims = verified.claims
    assert verified.header["alg"] == alg and verified.header["kid"] == key.kid
    assert claims["iss"] == claims["sub"] == CLIENT_ID and claims["aud"] == ISSUER
    assert claims["iat"] == int(NOW) and claims["exp"] - claims["iat"] == 60
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16


@pytest.mark.parametrize("alg", list(KEYS))
def test_assertion_is_signed_by_the_given_key_only(alg: str) -> None:
    key = KEYS[alg]
    assertion = ClientAuthentication.choose(CLIENT_ID, None, None, key.private, key.kid).assertion(ISSUER, NOW)
    with pytest.raises(jose.JOSEError):
        jose.verify(assertion, {key.kid: (alg, ATTACKER[alg].public)}, [alg])


def test_assertion_jti_is_unique_per_call() -> None:
    auth = ClientAuthentication.choose(CLIENT_ID, None, None, KEYS["ES256"].private, KEYS["ES256"].kid)
    jtis = {jose.verify(auth.assertion(ISSUER, NOW), {KEYS["ES256"].kid: ("ES256", KEYS["ES256"].public)},
                        ["ES256"]).claims["jti"] for _ in range(20)}
    assert len(jtis) == 20


def test_assertion_without_key_id_has_no_kid_header() -> None:
    auth = ClientAuthentication.choose(CLIENT_ID, None, None, KEYS["EdDSA"].private, None)
    assert "kid" not in header_of(auth.assertion(ISSUER, NOW))
    with_kid = ClientAuthentication.choose(CLIENT_ID, None, None, KEYS["EdDSA"].private, "client-key-7")
    assert header_of(with_kid.assertion(ISSUER, NOW))["kid"] == "client-key-7"


# --- choosing the method ------------------------------------------------------------------------


@pytest.mark.parametrize("secret, alg, method", [
    (None, "RS256", "private_key_jwt"), (CLIENT_SECRET, "ES256", "private_key_jwt"),
    (None, "EdDSA", "private_key_jwt"), (CLIENT_SECRET, None, "client_secret_basic"), (None, None, "none"),
])
def test_choose_follows_the_configuration(secret: str | None, alg: str | None, method: str) -> None:
    key = KEYS[alg].private if alg else None
    auth = ClientAuthentication.choose(CLIENT_ID, None, secret, key, None)
    assert auth.method == method and auth.key_alg == alg


def test_choose_respects_a_named_method() -> None:
    auth = ClientAuthentication.choose(CLIENT_ID, "client_secret_post", CLIENT_SECRET, None, None)
    assert auth.method == "client_secret_post"
    assert ClientAuthentication.choose(CLIENT_ID, "none", None, None, None).method == "none"


@pytest.mark.parametrize("method, secret, key", [
    ("client_secret_jwt", CLIENT_SECRET, None),
    ("tls_client_auth", None, None),
    ("Client_Secret_Basic", CLIENT_SECRET, None),
    ("client_secret_basic", None, None),
    ("client_secret_basic", "", None),
    ("client_secret_post", None, None),
    ("private_key_jwt", CLIENT_SECRET, None),
])
def test_unsupported_method_or_missing_credential_is_refused(method: str, secret: str | None, key: Any) -> None:
    with pytest.raises(ValueError):
        ClientAuthentication.choose(CLIENT_ID, method, secret, key, None)
    with pytest.raises(ValueError):
        ClientAuthentication(CLIENT_ID, method, secret, key)


def test_key_of_an_unsupported_curve_is_refused() -> None:
    with pytest.raises(ValueError):
        ClientAuthentication.choose(CLIENT_ID, None, None, ec.generate_private_key(ec.SECP384R1()), None)


def test_client_with_an_unsupported_method_is_refused() -> None:
    with pytest.raises(ValueError), client(FakeProvider(), auth_method="client_secret_jwt"):
        pass


# --- through the Client -------------------------------------------------------------------------


def test_client_secret_post_through_the_client() -> None:
    fake = FakeProvider().on("/token", json_response(token_body(id_token())))
    with client(fake, auth_method="client_secret_post") as rp:
        rp.finish_authorization(login(), callback())
    (request,) = fake.hits("/token")
    assert "authorization" not in request.headers
    sent = form(request)
    assert sent["client_id"] == [CLIENT_ID] and sent["client_secret"] == [CLIENT_SECRET]


def test_public_client_through_the_client() -> None:
    fake = FakeProvider().on("/token", json_response(token_body()))
    with client(fake, client_secret=None) as rp:
        rp.refresh(REFRESH_TOKEN)
    (request,) = fake.hits("/token")
    assert "authorization" not in request.headers
    assert form(request) == {"grant_type": ["refresh_token"], "refresh_token": [REFRESH_TOKEN],
                             "client_id": [CLIENT_ID]}


def test_private_key_jwt_through_the_client_on_every_endpoint() -> None:
    key = KEYS["RS256"]
    fake = FakeProvider().on("/token", json_response(token_body())).on("/revoke", json_response({}))
    fake.on("/introspect", json_response({"active": False}))
    with client(fake, client_secret=None, private_key=key.private, key_id=key.kid) as rp:
        rp.client_credentials("api")
        rp.introspect("some-token")
        rp.revoke("some-token")
    jtis = set()
    for path in ("/token", "/introspect", "/revoke"):
        (request,) = fake.hits(path)
        sent = form(request)
        assert "authorization" not in request.headers and "client_secret" not in sent
        assert sent["client_assertion_type"] == [ASSERTION_TYPE]
        claims = jose.verify(sent["client_assertion"][0], {key.kid: ("RS256", key.public)}, ["RS256"]).claims
        assert claims["aud"] == ISSUER and claims["iss"] == CLIENT_ID and claims["iat"] == int(NOW)
        jtis.add(claims["jti"])
    assert len(jtis) == 3


def test_basic_through_the_client_with_a_tricky_secret() -> None:
    fake = FakeProvider().on("/token", json_response(token_body()))
    with client(fake, client_secret=TRICKY_SECRET) as rp:
        rp.client_credentials()
    (request,) = fake.hits("/token")
    assert basic_credentials(request.headers["authorization"]) == (CLIENT_ID, TRICKY_SECRET)
    assert TRICKY_SECRET not in request.read().decode()
