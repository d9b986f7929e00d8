"""The authorization request (`start_authorization`) and the callback (`finish_authorization`):
encoding, PKCE, state and nonce, RFC 9207 `iss`, error answers, and the token request it makes."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from bastion.client import (
    AccessDenied,
    AccountSelectionRequired,
    AuthorizationRequest,
    CallbackError,
    ClientError,
    ConsentRequired,
    DiscoveryError,
    InteractionRequired,
    IssuerMismatch,
    LoginRequired,
    ProviderError,
    StateMismatch,
)
from tests.client.forge import (
    ACCESS_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    CODE,
    ISSUER,
    NONCE,
    REDIRECT_URI,
    STATE,
    VERIFIER,
    FakeProvider,
    async_client,
    callback,
    client,
    discovery,
    form,
    id_claims,
    id_token,
    json_response,
    login,
    token_body,
)

B64URL_256_BITS = re.compile(r"[A-Za-z0-9_-]{43}")


def provider(**metadata: Any) -> FakeProvider:
    return FakeProvider(discovery(**metadata)).on("/token", json_response(token_body(id_token())))


def finish(fake: FakeProvider, response: str | Any, auth: AuthorizationRequest | None = None) -> Any:
    with client(fake) as rp:
        return rp.finish_authorization(auth or login(), response)


def start(fake: FakeProvider | None = None, scope: str = "openid", **kwargs: Any) -> AuthorizationRequest:
    with client(fake or FakeProvider()) as rp:
        return rp.start_authorization(scope, **kwargs)


def query(auth: AuthorizationRequest) -> dict[str, list[str]]:
    return parse_qs(urlsplit(auth.url).query, keep_blank_values=True)


# --- the callback -------------------------------------------------------------------------------


def test_good_callback_redeems_the_code() -> None:
    fake = provider()
    tokens = finish(fake, callback())
    assert tokens.access_token == ACCESS_TOKEN and tokens.subject == "alice"
    assert len(fake.hits("/token")) == 1


def test_token_request_carries_code_verifier_redirect_uri_and_client_auth() -> None:
    fake = provider()
    finish(fake, callback())
    (request,) = fake.hits("/token")
    assert request.method == "POST" and str(request.url) == f"{ISSUER}/token"
    assert form(request) == {"grant_type": ["authorization_code"], "code": [CODE],
                             "redirect_uri": [REDIRECT_URI], "code_verifier": [VERIFIER]}
    scheme, _, credentials = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == f"{CLIENT_ID}:{CLIENT_SECRET}"


@pytest.mark.parametrize("state", ["state-other", "", STATE + "x", STATE.upper()])
def test_wrong_state_is_refused_before_any_token_request(state: str) -> None:
    fake = provider()
    with pytest.raises(StateMismatch):
        finish(fake, callback(state=state))
    assert fake.hits("/token") == []


def test_missing_state_is_refused_before_any_token_request() -> None:
    fake = provider()
    with pytest.raises(StateMismatch):
        finish(fake, callback(state=None))
    assert fake.hits("/token") == []


def test_error_answer_with_a_wrong_state_is_a_state_mismatch() -> None:
    """An attacker cannot inject `access_denied` into someone else's login."""
    with pytest.raises(StateMismatch):
        finish(provider(), callback(state="forged", code=None, error="access_denied"))


@pytest.mark.parametrize("iss", ["https://evil.example", ISSUER + "/", "https://op.example.evil", ""])
def test_other_issuer_is_refused(iss: str) -> None:
    fake = provider()
    with pytest.raises(IssuerMismatch):
        finish(fake, callback(iss=iss))
    assert fake.hits("/token") == []


def test_missing_iss_is_refused_when_the_provider_advertises_it() -> None:
    fake = provider()
    with pytest.raises(IssuerMismatch):
        finish(fake, callback(iss=None))
    assert fake.hits("/token") == []


@pytest.mark.parametrize("flag", [None, False])
def test_missing_iss_is_accepted_when_not_advertised(flag: bool | None) -> None:
    fake = provider(authorization_response_iss_parameter_supported=flag)
    assert finish(fake, callback(iss=None)).subject == "alice"


def test_wrong_iss_is_refused_even_when_not_advertised() -> None:
    with pytest.raises(IssuerMismatch):
        finish(provider(authorization_response_iss_parameter_supported=None), callback(iss="https://evil.example"))


def test_error_answer_from_another_issuer_is_an_issuer_mismatch() -> None:
    with pytest.raises(IssuerMismatch):
        finish(provider(), callback(code=None, iss="https://evil.example", error="access_denied"))


def test_access_denied_carries_the_description() -> None:
    fake = provider()
    with pytest.raises(AccessDenied) as caught:
        finish(fake, callback(code=None, error="access_denied", error_description="The user said no"))
    assert caught.value.error == "access_denied" and caught.value.description == "The user said no"
    assert "The user said no" in str(caught.value)
    assert fake.hits("/token") == []


@pytest.mark.parametrize("code, cls", [
    ("login_required", LoginRequired), ("consent_required", ConsentRequired),
    ("interaction_required", InteractionRequired), ("account_selection_required", AccountSelectionRequired),
])
def test_prompt_none_errors_have_their_own_classes(code: str, cls: type[ProviderError]) -> None:
    with pytest.raises(cls) as caught:
        finish(provider(), callback(code=None, error=code))
    assert caught.value.error == code


def test_unknown_error_code_is_a_provider_error_with_the_code() -> None:
    with pytest.raises(ProviderError) as caught:
        finish(provider(), callback(code=None, error="quota_exceeded", error_uri="https://op.example/help"))
    assert type(caught.value) is ProviderError
    assert caught.value.error == "quota_exceeded" and caught.value.uri == "https://op.example/help"


def test_callback_without_code_or_error_is_refused() -> None:
    fake = provider()
    with pytest.raises(CallbackError):
        finish(fake, callback(code=None))
    with pytest.raises(CallbackError):
        finish(fake, callback(code=""))
    assert fake.hits("/token") == []


@pytest.mark.parametrize("name", ["code", "state", "iss"])
def test_duplicated_parameter_is_refused(name: str) -> None:
    fake = provider()
    value = {"code": CODE, "state": STATE, "iss": ISSUER}[name]
    with pytest.raises(CallbackError):
        finish(fake, callback() + f"&{name}={value}")
    assert fake.hits("/token") == []


def test_form_post_mapping_is_accepted() -> None:
    fake = provider()
    tokens = finish(fake, {"code": CODE, "state": STATE, "iss": ISSUER})
    assert tokens.subject == "alice"
    assert form(fake.hits("/token")[0])["code"] == [CODE]


def test_form_post_mapping_with_one_value_lists_is_accepted() -> None:
    assert finish(provider(), {"code": [CODE], "state": [STATE], "iss": [ISSUER]}).subject == "alice"


@pytest.mark.parametrize("body", [
    {"code": [CODE, "code-2"], "state": STATE, "iss": ISSUER},
    {"code": CODE, "state": [STATE, STATE], "iss": ISSUER},
    {"code": 42, "state": STATE, "iss": ISSUER},
    {"code": CODE, "state": STATE.encode(), "iss": ISSUER},
])
def test_form_post_mapping_with_repeated_or_garbled_values_is_refused(body: dict[str, Any]) -> None:
    fake = provider()
    with pytest.raises(CallbackError):
        finish(fake, body)
    assert fake.hits("/token") == []


def test_form_post_mapping_with_wrong_state_is_refused() -> None:
    with pytest.raises(StateMismatch):
        finish(provider(), {"code": CODE, "state": "forged", "iss": ISSUER})


async def test_async_client_checks_the_callback_the_same_way() -> None:
    fake = provider()
    async with async_client(fake) as rp:
        with pytest.raises(StateMismatch):
            await rp.finish_authorization(login(), callback(state="forged"))
        with pytest.raises(IssuerMismatch):
            await rp.finish_authorization(login(), callback(iss=None))
        tokens = await rp.finish_authorization(login(), callback())
    assert tokens.subject == "alice"
    assert form(fake.hits("/token")[0])["code_verifier"] == [VERIFIER]


# --- the authorization request ------------------------------------------------------------------


def test_url_is_encoded_and_round_trips() -> None:
    redirect = "https://app.example/cb?next=/home&x=a b"
    hint = "ali&ce=1 élève+x@例え.jp"
    auth = start(scope="openid profile email", redirect_uri=redirect, login_hint=hint)
    raw = urlsplit(auth.url).query
    assert "scope=openid%20profile%20email" in raw and "+" not in raw
    assert raw.count("&") == len(query(auth)) - 1  # no '&' leaks from a value
    params = query(auth)
    assert params["scope"] == ["openid profile email"]
    assert params["redirect_uri"] == [redirect] and auth.redirect_uri == redirect
    assert params["login_hint"] == [hint]
    assert params["response_type"] == ["code"] and params["client_id"] == [CLIENT_ID]
    assert auth.url.startswith(f"{ISSUER}/authorize?")


def test_pkce_challenge_is_s256_of_the_stored_verifier() -> None:
    auth = start()
    params = query(auth)
    expected = base64.urlsafe_b64encode(hashlib.sha256(auth.code_verifier.encode()).digest()).rstrip(b"=").decode()
    assert params["code_challenge"] == [expected] and params["code_challenge_method"] == ["S256"]
    assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", auth.code_verifier)
    assert auth.code_verifier not in auth.url


def test_state_and_nonce_are_fresh_256_bit_values() -> None:
    with client(FakeProvider()) as rp:
        first, second = rp.start_authorization(), rp.start_authorization()
    for auth in (first, second):
        assert B64URL_256_BITS.fullmatch(auth.state) and auth.nonce and B64URL_256_BITS.fullmatch(auth.nonce)
        assert query(auth)["state"] == [auth.state] and query(auth)["nonce"] == [auth.nonce]
    assert first.state != second.state and first.nonce != second.nonce
    assert first.code_verifier != second.code_verifier and first.state != first.nonce


@pytest.mark.parametrize("scope", ["profile api", "openidx profile", "OPENID"])
def test_no_nonce_without_openid_scope(scope: str) -> None:
    auth = start(scope=scope)
    assert auth.nonce is None and "nonce" not in query(auth)
    assert auth.scope == scope


def test_optional_parameters() -> None:
    auth = start(prompt="login consent", max_age=0, acr_values="urn:mace:incommon:iap:silver",
                 response_mode="form_post")
    params = query(auth)
    assert params["prompt"] == ["login consent"] and params["max_age"] == ["0"] and auth.max_age == 0
    assert params["acr_values"] == ["urn:mace:incommon:iap:silver"] and params["response_mode"] == ["form_post"]
    bare = query(start())
    assert not {"prompt", "max_age", "login_hint", "acr_values", "response_mode", "resource"} & set(bare)


def test_resource_given_twice() -> None:
    resources = ["https://api.example/a", "https://api.example/b?x=1"]
    assert query(start(resource=resources))["resource"] == resources
    assert query(start(resource="https://api.example/a"))["resource"] == ["https://api.example/a"]


def test_extra_parameters_are_added() -> None:
    params = query(start(extra={"ui_locales": "fr de", "claims": '{"id_token":{"email":null}}'}))
    assert params["ui_locales"] == ["fr de"] and params["claims"] == ['{"id_token":{"email":null}}']


@pytest.mark.parametrize("name", ["state", "nonce", "redirect_uri", "client_id", "code_challenge",
                                  "code_challenge_method", "response_type", "scope"])
def test_reserved_extra_parameter_is_refused(name: str) -> None:
    with pytest.raises(ClientError):
        start(extra={name: "attacker-chosen"})


def test_endpoint_with_a_query_gets_an_ampersand() -> None:
    fake = FakeProvider(discovery(authorization_endpoint=f"{ISSUER}/authorize?p=b2c_1_signin"))
    auth = start(fake)
    assert auth.url.startswith(f"{ISSUER}/authorize?p=b2c_1_signin&response_type=code&")
    assert auth.url.count("?") == 1
    assert query(auth)["p"] == ["b2c_1_signin"] and query(auth)["state"] == [auth.state]


def test_provider_offering_only_plain_pkce_is_refused() -> None:
    with pytest.raises(DiscoveryError):
        start(FakeProvider(discovery(code_challenge_methods_supported=["plain"])))


def test_provider_not_listing_pkce_methods_still_gets_s256() -> None:
    auth = start(FakeProvider(discovery(code_challenge_methods_supported=None)))
    assert query(auth)["code_challenge_method"] == ["S256"]


def test_redirect_uri_is_required() -> None:
    with client(FakeProvider()) as rp:
        rp.redirect_uri = None
        with pytest.raises(ClientError):
            rp.start_authorization()


def test_start_authorization_only_reads_discovery() -> None:
    fake = FakeProvider()
    start(fake)
    assert [(r.method, r.url.path) for r in fake.requests] == [("GET", "/.well-known/openid-configuration")]


def test_stored_request_round_trips_and_garbage_is_refused() -> None:
    auth = start(max_age=60)
    assert AuthorizationRequest.from_dict(auth.to_dict()) == auth
    with pytest.raises(ClientError):
        AuthorizationRequest.from_dict({**auth.to_dict(), "extra": 1})
    with pytest.raises(ClientError):
        AuthorizationRequest.from_dict({**auth.to_dict(), "state": None})


def test_started_login_finishes_with_its_own_state_and_nonce() -> None:
    fake = FakeProvider()
    with client(fake) as rp:
        auth = rp.start_authorization()
        assert auth.nonce is not None and auth.nonce != NONCE
        fake.on("/token", json_response(token_body(id_token(id_claims(nonce=auth.nonce)))))
        tokens = rp.finish_authorization(auth, callback(state=auth.state))
        assert tokens.claims is not None and tokens.claims["nonce"] == auth.nonce
        other = rp.start_authorization()
        with pytest.raises(StateMismatch):
            rp.finish_authorization(other, callback(state=auth.state))
    assert form(fake.hits("/token")[0])["code_verifier"] == [auth.code_verifier]
