"""A hostile or broken provider: every malformed answer becomes a typed `ClientError` (never a bare
KeyError, ValueError or httpx exception), provider text is sanitized, polling follows RFC 8628, and
no message or repr carries a token, code, verifier, device code or client secret."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bastion.client import (
    AccessDenied,
    AuthorizationRequest,
    Client,
    ClientAuthentication,
    ClientError,
    DeviceAuthorization,
    DiscoveryError,
    ExpiredToken,
    InsufficientScope,
    InvalidClient,
    InvalidGrant,
    InvalidResponse,
    InvalidScope,
    InvalidToken,
    NetworkError,
    ProviderError,
    RefreshTokenRevoked,
    SubjectMismatch,
    TemporarilyUnavailable,
    Timeout,
    TokenSet,
    UnauthorizedClient,
)
from bastion.client.protocol import failure
from bastion.sansio import Sleep
from tests.client.forge import (
    ACCESS_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    CODE,
    DEVICE_CODE,
    ISSUER,
    KEYS,
    NOW,
    REDIRECT_URI,
    REFRESH_TOKEN,
    SECRETS,
    VERIFIER,
    Clock,
    FakeProvider,
    async_client,
    callback,
    client,
    discovery,
    id_claims,
    id_token,
    json_response,
    login,
    sleeper,
    text_response,
    token_body,
)

WELL_KNOWN = "/.well-known/openid-configuration"
RFC8414 = "/.well-known/oauth-authorization-server"


def tokens_from(*answers: httpx.Response | Exception, **kwargs: Any) -> TokenSet:
    """client_credentials against a token endpoint giving `answers`: the token response rules
    without an ID token in the way."""
    fake = FakeProvider().on("/token", *answers)
    with client(fake, **kwargs) as rp:
        return rp.client_credentials("api")


# --- discovery ----------------------------------------------------------------------------------


@pytest.mark.parametrize("issuer", ["https://evil.example", ISSUER + "/", "https://OP.example", "", None, 42])
def test_metadata_naming_another_issuer_is_refused(issuer: Any) -> None:
    document = {**discovery(), "issuer": issuer}
    with client(FakeProvider(document)) as rp, pytest.raises(DiscoveryError):
        rp.discover()


@pytest.mark.parametrize("answer", [
    text_response("<html>welcome</html>"),
    json_response([discovery()]),
    json_response("https://op.example"),
    text_response("{" * 100_000, content_type="application/json"),
    httpx.Response(200, content=b"\xff\xfe{}", headers={"content-type": "application/json"}),
    json_response(discovery(), 500),
    text_response("<h1>Internal Server Error</h1>", 500),
    httpx.Response(302, headers={"location": "https://evil.example/.well-known/openid-configuration"}),
    httpx.Response(404),
])
def test_unusable_metadata_is_a_discovery_error(answer: httpx.Response) -> None:
    fake = FakeProvider().on(WELL_KNOWN, answer)
    with client(fake) as rp, pytest.raises(DiscoveryError):
        rp.discover()
    assert all(r.url.host == "op.example" for r in fake.requests)


def test_rfc8414_location_is_tried_after_a_404() -> None:
    issuer = f"{ISSUER}/tenant"
    fake = FakeProvider().on("/tenant" + WELL_KNOWN, httpx.Response(404))
    fake.on(RFC8414 + "/tenant", json_response(discovery(issuer)))
    with client(fake, issuer=issuer) as rp:
        assert rp.discover().issuer == issuer
        rp.discover()
    assert [r.url.path for r in fake.requests] == ["/tenant" + WELL_KNOWN, RFC8414 + "/tenant"]


@pytest.mark.parametrize("issuer", [
    "http://op.example", "http://localhost.evil.example", "http://127.0.0.1.nip.io", "ftp://op.example",
    "https://op.example?tenant=1", "https://op.example#x", "https://", "op.example", "https://[::1",
])
def test_unsafe_or_malformed_issuer_is_refused_at_construction(issuer: str) -> None:
    with pytest.raises(DiscoveryError):
        Client(issuer, CLIENT_ID)


@pytest.mark.parametrize("issuer", ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"])
def test_loopback_http_issuer_is_allowed(issuer: str) -> None:
    fake = FakeProvider(discovery(issuer))
    with client(fake, issuer=issuer) as rp:
        assert rp.discover().issuer == issuer


@pytest.mark.parametrize("endpoint, value", [
    ("token_endpoint", "http://op.example/token"),
    ("token_endpoint", None),
    ("token_endpoint", 42),
    ("token_endpoint", "https://op.example/token#frag"),
    ("jwks_uri", "http://op.example/jwks"),
    ("jwks_uri", "file:///etc/passwd"),
])
def test_unsafe_endpoint_is_refused_before_it_is_used(endpoint: str, value: Any) -> None:
    fake = FakeProvider({**discovery(), endpoint: value}).on("/token", json_response(token_body(id_token())))
    with client(fake) as rp, pytest.raises(DiscoveryError):
        rp.finish_authorization(login(), callback())
    assert all(r.url.scheme == "https" for r in fake.requests)


@pytest.mark.parametrize("endpoint, call", [
    ("authorization_endpoint", lambda rp: rp.start_authorization()),
    ("userinfo_endpoint", lambda rp: rp.userinfo(ACCESS_TOKEN)),
    ("introspection_endpoint", lambda rp: rp.introspect(ACCESS_TOKEN)),
    ("revocation_endpoint", lambda rp: rp.revoke(REFRESH_TOKEN)),
    ("device_authorization_endpoint", lambda rp: rp.device_authorization()),
    ("end_session_endpoint", lambda rp: rp.end_session_url()),
])
@pytest.mark.parametrize("value", ["http://op.example/x", "javascript:alert(1)"])
def test_other_unsafe_endpoints_are_refused(endpoint: str, call: Callable[[Client], Any], value: str) -> None:
    fake = FakeProvider(discovery(**{endpoint: value}))
    with client(fake) as rp, pytest.raises(DiscoveryError):
        call(rp)
    assert [r.url.path for r in fake.requests] == [WELL_KNOWN]


@pytest.mark.parametrize("value", ["https://[::1/token", "https://op.example:port/token",
                                   "https://op.example/to\u0000ken"])
def test_malformed_endpoint_url_is_a_discovery_error(value: str) -> None:
    """Whatever the metadata says, the caller sees a ClientError, not urllib's or httpx's."""
    fake = FakeProvider(discovery(token_endpoint=value))
    with client(fake) as rp, pytest.raises(DiscoveryError):
        rp.client_credentials()


# --- the token endpoint -------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [
    text_response("<html>Login</html>"),
    json_response([token_body()]),
    json_response(token_body(access_token=None)),
    json_response(token_body(access_token="")),
    json_response(token_body(access_token=42)),
    json_response(token_body(token_type=None)),
    json_response(token_body(token_type="mac")),
    json_response(token_body(token_type="DPoP")),
    json_response(token_body(refresh_token=["r"])),
    json_response(token_body(), 201),
])
def test_malformed_token_response_is_invalid(answer: httpx.Response) -> None:
    with pytest.raises(InvalidResponse):
        tokens_from(answer)


@pytest.mark.parametrize("token_type", ["Bearer", "bearer", "BEARER"])
def test_bearer_in_any_case_is_accepted(token_type: str) -> None:
    tokens = tokens_from(json_response(token_body(token_type=token_type)))
    assert tokens.access_token == ACCESS_TOKEN and tokens.refresh_token == REFRESH_TOKEN


@pytest.mark.parametrize("expires_in, expires_at", [
    (3600, NOW + 3600), ("3600", NOW + 3600), (-5, None), (0, None), ("-5", None), ("abc", None),
    (True, None), (None, None), ("1e3", None), ("²", None), ("9" * 5000, None),
])
def test_expires_in(expires_in: Any, expires_at: float | None) -> None:
    assert tokens_from(json_response(token_body(expires_in=expires_in))).expires_at == expires_at


def test_invalid_grant_on_the_code_is_invalid_grant() -> None:
    fake = FakeProvider().on("/token", json_response({"error": "invalid_grant"}, 400))
    with client(fake) as rp, pytest.raises(InvalidGrant) as caught:
        rp.finish_authorization(login(), callback())
    assert type(caught.value) is InvalidGrant and caught.value.status == 400


def test_invalid_grant_on_refresh_is_refresh_token_revoked() -> None:
    fake = FakeProvider().on("/token", json_response({"error": "invalid_grant", "error_description": "reused"}, 400))
    with client(fake) as rp, pytest.raises(RefreshTokenRevoked) as caught:
        rp.refresh(REFRESH_TOKEN)
    assert isinstance(caught.value, InvalidGrant) and caught.value.description == "reused"


@pytest.mark.parametrize("answer", [
    httpx.Response(401),
    httpx.Response(401, headers={"www-authenticate": 'Basic realm="op"'}),
    text_response("<html>Unauthorized</html>", 401),
    json_response({"error": "invalid_client"}, 401),
    json_response({"error": "invalid_client"}, 400),
])
def test_failed_client_authentication_is_invalid_client(answer: httpx.Response) -> None:
    with pytest.raises(InvalidClient):
        tokens_from(answer)


@pytest.mark.parametrize("code, cls", [
    ("invalid_scope", InvalidScope), ("unauthorized_client", UnauthorizedClient),
    ("temporarily_unavailable", TemporarilyUnavailable),
])
def test_error_codes_have_their_classes(code: str, cls: type[ProviderError]) -> None:
    with pytest.raises(cls):
        tokens_from(json_response({"error": code}, 400))


def test_server_error_page_is_invalid_response_without_its_body() -> None:
    with pytest.raises(InvalidResponse) as caught:
        tokens_from(text_response("<html>Traceback: db password hunter2</html>", 500))
    assert not isinstance(caught.value, ProviderError)
    assert "HTTP 500" in str(caught.value)
    assert "hunter2" not in str(caught.value) and "Traceback" not in str(caught.value)


@pytest.mark.parametrize("error", [42, None, "", 'bad"code', "bad\\code", "two\nlines", "é"])
def test_malformed_error_code_is_invalid_response(error: Any) -> None:
    with pytest.raises(InvalidResponse) as caught:
        tokens_from(json_response({"error": error, "error_description": "x"}, 400))
    assert not isinstance(caught.value, ProviderError)


def test_provider_text_is_sanitized() -> None:
    description = "bad \x1b[31mred\x1b[0m\x07 line\nbreak\r\x00 \u202egnp.exe " + "A" * 500
    with pytest.raises(InvalidGrant) as caught:
        tokens_from(json_response({"error": "invalid_grant", "error_description": description,
                                   "error_uri": "https://op.example/\x1b[2J"}, 400))
    shown = f"{caught.value} {caught.value.description} {caught.value.uri}"
    assert not any(c in shown for c in "\x1b\x07\n\r\x00\u202e")
    assert "bad ?[31mred" in str(caught.value)
    assert caught.value.description is not None and len(caught.value.description) <= 200


# --- UserInfo -----------------------------------------------------------------------------------


def userinfo(*answers: httpx.Response, token: str | TokenSet = ACCESS_TOKEN, subject: str | None = None,
             fake: FakeProvider | None = None) -> dict[str, Any]:
    fake = (fake or FakeProvider()).on("/userinfo", *answers)
    with client(fake) as rp:
        return rp.userinfo(token, subject=subject)


def logged_in(sub: str = "alice") -> TokenSet:
    return TokenSet(ACCESS_TOKEN, "Bearer", None, claims={"sub": sub})


def test_userinfo_sends_the_token_in_the_header() -> None:
    fake = FakeProvider()
    assert userinfo(json_response({"sub": "alice", "email": "a@example"}), token=logged_in(), fake=fake)["email"]
    (request,) = fake.hits("/userinfo")
    assert request.headers["authorization"] == f"Bearer {ACCESS_TOKEN}" and ACCESS_TOKEN not in str(request.url)


def test_userinfo_about_another_user_is_a_subject_mismatch() -> None:
    with pytest.raises(SubjectMismatch):
        userinfo(json_response({"sub": "mallory"}), token=logged_in("alice"))
    with pytest.raises(SubjectMismatch):
        userinfo(json_response({"sub": "mallory"}), subject="alice")
    assert userinfo(json_response({"sub": "mallory"}))["sub"] == "mallory"  # nothing to compare with


@pytest.mark.parametrize("body", [{}, {"sub": 42}, {"sub": None}])
def test_userinfo_without_subject_is_invalid(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidResponse):
        userinfo(json_response(body))


def test_userinfo_invalid_token_challenge_is_invalid_token() -> None:
    challenge = 'Bearer realm="op", error="invalid_token", error_description="expired"'
    with pytest.raises(InvalidToken):
        userinfo(httpx.Response(401, headers={"www-authenticate": challenge}))
    with pytest.raises(InvalidToken):
        userinfo(json_response({"error": "invalid_token"}, 401))


def test_userinfo_insufficient_scope_challenge_is_insufficient_scope() -> None:
    """RFC 6750 §3.1: insufficient_scope comes as 403 with the error in the challenge."""
    challenge = 'Bearer error="insufficient_scope", scope="openid email"'
    with pytest.raises(InsufficientScope):
        userinfo(httpx.Response(403, headers={"www-authenticate": challenge}))


@pytest.mark.parametrize("answer", [
    text_response("eyJhbGciOiJSUzI1NiJ9.e30.c2ln", content_type="application/jwt"),
    json_response({"sub": "alice"}, **{"content-type": "application/jwt"}),
    text_response("<html>hi</html>"),
    json_response(["alice"]),
])
def test_userinfo_that_is_not_a_json_object_is_invalid(answer: httpx.Response) -> None:
    with pytest.raises(InvalidResponse):
        userinfo(answer)


# --- introspection and revocation ---------------------------------------------------------------


@pytest.mark.parametrize("body", [{}, {"active": "true"}, {"active": 1}, {"active": None}])
def test_introspection_without_boolean_active_is_invalid(body: dict[str, Any]) -> None:
    fake = FakeProvider().on("/introspect", json_response(body))
    with client(fake) as rp, pytest.raises(InvalidResponse):
        rp.introspect(ACCESS_TOKEN)


@pytest.mark.parametrize("active", [True, False])
def test_introspection_with_boolean_active(active: bool) -> None:
    fake = FakeProvider().on("/introspect", json_response({"active": active}))
    with client(fake) as rp:
        assert rp.introspect(ACCESS_TOKEN)["active"] is active


def test_revocation() -> None:
    fake = FakeProvider().on("/revoke", httpx.Response(200),
                             json_response({"error": "temporarily_unavailable"}, 503),
                             text_response("<html>oops</html>", 500))
    with client(fake) as rp:
        rp.revoke(REFRESH_TOKEN, token_type_hint="refresh_token")
        with pytest.raises(TemporarilyUnavailable):
            rp.revoke(REFRESH_TOKEN)
        with pytest.raises(InvalidResponse):
            rp.revoke(REFRESH_TOKEN)


# --- device authorization -----------------------------------------------------------------------

DEVICE = {"device_code": DEVICE_CODE, "user_code": "WDJB-MJHT", "verification_uri": f"{ISSUER}/device",
          "expires_in": 600}


def device_authorization(body: Any) -> DeviceAuthorization:
    fake = FakeProvider().on("/device", json_response(body))
    with client(fake) as rp:
        return rp.device_authorization()


def test_device_authorization() -> None:
    device = device_authorization(DEVICE)
    assert (device.user_code, device.verification_uri, device.interval) == ("WDJB-MJHT", f"{ISSUER}/device", 5)
    assert device.expires_at == NOW + 600 and device.device_code == DEVICE_CODE


@pytest.mark.parametrize("change", [
    {"user_code": None}, {"user_code": ""}, {"user_code": 1234}, {"device_code": None},
    {"verification_uri": None}, {"verification_uri": "javascript:alert(document.cookie)"},
    {"verification_uri": "http://op.example/device"}, {"verification_uri": "data:text/html,hi"},
    {"verification_uri_complete": "javascript:alert(1)"}, {"expires_in": None}, {"expires_in": -1},
    {"interval": 0}, {"interval": "soon"},
])
def test_malformed_device_authorization_is_invalid(change: dict[str, Any]) -> None:
    body = {k: v for k, v in {**DEVICE, **change}.items() if v is not None}
    with pytest.raises(InvalidResponse) as caught:
        device_authorization(body)
    assert DEVICE_CODE not in str(caught.value)


POLLED = DeviceAuthorization(DEVICE_CODE, "WDJB-MJHT", f"{ISSUER}/device", None, NOW + 600, 5)
PENDING = json_response({"error": "authorization_pending"}, 400)
SLOW_DOWN = json_response({"error": "slow_down"}, 400)
TOKENS = json_response(token_body())


def poll(*answers: httpx.Response | Exception, device: DeviceAuthorization = POLLED) -> tuple[Any, list[float], int]:
    """`poll_device_token` on a fake clock: (result or exception, sleeps, token requests)."""
    fake, clock, sleeps = FakeProvider().on("/token", *answers), Clock(), []
    with client(fake, clock=clock, sleep=sleeper(clock, sleeps)) as rp:
        try:
            result: Any = rp.poll_device_token(device)
        except ClientError as exc:
            result = exc
    requests = fake.hits("/token")
    assert all(r.headers["authorization"].startswith("Basic ") for r in requests)
    return result, sleeps, len(requests)


def test_polling_waits_and_slows_down() -> None:
    result, sleeps, requests = poll(PENDING, SLOW_DOWN, TOKENS)
    assert isinstance(result, TokenSet) and result.access_token == ACCESS_TOKEN
    assert sleeps == [5, 5, 10] and requests == 3


def test_slow_down_adds_up_and_stays() -> None:
    _, sleeps, _ = poll(SLOW_DOWN, SLOW_DOWN, PENDING, TOKENS)
    assert sleeps == [5, 10, 15, 15]


def test_polling_sends_the_device_code_grant() -> None:
    fake = FakeProvider().on("/token", TOKENS)
    with client(fake, sleep=lambda seconds: None) as rp:
        rp.poll_device_token(POLLED)
    body = fake.hits("/token")[0].read().decode()
    assert "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code" in body
    assert f"device_code={DEVICE_CODE}" in body


async def test_async_polling_waits_and_slows_down() -> None:
    fake = FakeProvider().on("/token", PENDING, SLOW_DOWN, httpx.ReadTimeout("slow"), TOKENS)
    clock, sleeps = Clock(), []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    async with async_client(fake, clock=clock, sleep=sleep) as rp:
        tokens = await rp.poll_device_token(POLLED)
    assert tokens.access_token == ACCESS_TOKEN and sleeps == [5, 5, 10, 20]


def test_polling_stops_at_expiry() -> None:
    device = DeviceAuthorization(DEVICE_CODE, "WDJB-MJHT", f"{ISSUER}/device", None, NOW + 12, 5)
    result, sleeps, requests = poll(PENDING, device=device)
    assert isinstance(result, ExpiredToken)
    assert sleeps == [5, 5] and requests == 2


@pytest.mark.parametrize("error, cls", [("expired_token", ExpiredToken), ("access_denied", AccessDenied),
                                        ("invalid_grant", InvalidGrant)])
def test_polling_stops_at_a_final_answer(error: str, cls: type[ClientError]) -> None:
    result, sleeps, requests = poll(PENDING, json_response({"error": error}, 400))
    assert isinstance(result, cls) and requests == 2 and sleeps == [5, 5]


def test_timeout_while_polling_doubles_the_interval() -> None:
    result, sleeps, requests = poll(httpx.ReadTimeout("slow"), PENDING, TOKENS)
    assert isinstance(result, TokenSet)
    assert sleeps == [5, 10, 10] and requests == 3


def test_timeout_thrown_into_the_flow_doubles_the_interval() -> None:
    """Driving the generator by hand: whatever the driver, a thrown Timeout means waiting twice as long."""
    fake = FakeProvider()
    with client(fake) as rp:
        flow = rp._poll_device_token(POLLED)
        assert next(flow) == Sleep(5)
        step = flow.send(None)
        while isinstance(step, httpx.Request) and step.url.path != "/token":
            step = flow.send(fake(step))  # discovery
        assert isinstance(step, httpx.Request) and step.method == "POST"
        assert flow.throw(Timeout("the provider did not answer in time")) == Sleep(10)
        assert isinstance(flow.send(None), httpx.Request)
        assert flow.throw(Timeout("again")) == Sleep(20)
        flow.close()


def test_connection_error_while_polling_is_raised() -> None:
    result, _, requests = poll(httpx.ConnectError("refused"))
    assert isinstance(result, NetworkError) and not isinstance(result, Timeout) and requests == 1


# --- the network --------------------------------------------------------------------------------


@pytest.mark.parametrize("exc, cls", [
    (httpx.ConnectError("[Errno 111] Connection refused"), NetworkError),
    (httpx.RemoteProtocolError("peer closed connection"), NetworkError),
    (httpx.ReadTimeout("timed out"), Timeout),
    (httpx.ConnectTimeout("timed out"), Timeout),
])
def test_transport_failures_are_network_errors(exc: Exception, cls: type[NetworkError]) -> None:
    with client(FakeProvider().on(WELL_KNOWN, exc)) as rp, pytest.raises(cls) as caught:
        rp.discover()
    assert cls is Timeout or not isinstance(caught.value, Timeout)


async def test_transport_failures_are_network_errors_async() -> None:
    fake = FakeProvider().on("/token", httpx.ConnectError("refused"), httpx.ReadTimeout("slow"))
    async with async_client(fake) as rp:
        with pytest.raises(NetworkError) as caught:
            await rp.client_credentials()
        assert not isinstance(caught.value, Timeout)
        with pytest.raises(Timeout):
            await rp.client_credentials()


def test_failure_maps_httpx_errors() -> None:
    assert isinstance(failure(httpx.PoolTimeout("full")), Timeout)
    error = failure(httpx.ConnectError("refused \x1b[31m"))
    assert type(error) is NetworkError and "\x1b" not in str(error) and "ConnectError" in str(error)


# --- nothing secret in messages or reprs --------------------------------------------------------


def test_reprs_hide_secrets() -> None:
    tokens = TokenSet(ACCESS_TOKEN, "Bearer", NOW + 60, REFRESH_TOKEN, id_token(), {"sub": "alice"}, "openid",
                      token_body(id_token()))
    auth = AuthorizationRequest(f"{ISSUER}/authorize?state=s", "s", "n", VERIFIER, REDIRECT_URI)
    device = DeviceAuthorization(DEVICE_CODE, "WDJB-MJHT", f"{ISSUER}/device", f"{ISSUER}/device?c=WDJB", NOW, 5)
    auth_methods = [ClientAuthentication(CLIENT_ID, "client_secret_post", CLIENT_SECRET),
                    ClientAuthentication.choose(CLIENT_ID, None, None, KEYS["RS256"].private, "k1")]
    for value in (tokens, auth, device, *auth_methods):
        shown = f"{value!r} {value!s}"
        assert not [s for s in SECRETS if s in shown], shown
    assert tokens.id_token not in repr(tokens)
    assert "alice" in repr(tokens) and "WDJB-MJHT" in repr(device)  # the reprs still say something


def poll_on(rp: Client, device: DeviceAuthorization) -> TokenSet:
    """Poll on the client's own fake clock (from `client()`), without waiting."""
    clock = rp._clock
    assert isinstance(clock, Clock)
    rp._sleep = sleeper(clock, [])
    return rp.poll_device_token(device)


def _scenarios() -> dict[str, tuple[tuple[str, Any], Callable[[Client, FakeProvider], Any]]]:
    def code_exchange(rp: Client, fake: FakeProvider) -> TokenSet:
        return rp.finish_authorization(login(), callback())

    return {
        "code refused": (("/token", json_response({"error": "invalid_grant"}, 400)), code_exchange),
        "client refused": (("/token", httpx.Response(401)), code_exchange),
        "error page echoing the request": (
            ("/token", text_response(f"<pre>code={CODE}&code_verifier={VERIFIER}&secret={CLIENT_SECRET}</pre>",
                                     500)), code_exchange),
        "token type": (("/token", json_response(token_body(id_token(), token_type="mac"))), code_exchange),
        "refresh token type": (("/token", json_response(token_body(id_token(), refresh_token={"v": REFRESH_TOKEN}))),
                               code_exchange),
        "ID token": (("/token", json_response(token_body(id_token(id_claims(nonce="x"))))), code_exchange),
        "network": (("/token", httpx.ConnectError("refused")), code_exchange),
        "timeout": (("/token", httpx.ReadTimeout("slow")), code_exchange),
        "state": (("/token", json_response(token_body())),
                  lambda rp, fake: rp.finish_authorization(login(), callback(state="forged"))),
        "repeated code": (("/token", json_response(token_body())),
                          lambda rp, fake: rp.finish_authorization(login(), callback() + f"&code={CODE}")),
        "refresh revoked": (("/token", json_response({"error": "invalid_grant"}, 400)),
                            lambda rp, fake: rp.refresh(REFRESH_TOKEN)),
        "userinfo subject": (("/userinfo", json_response({"sub": "mallory"})),
                             lambda rp, fake: rp.userinfo(ACCESS_TOKEN, subject="alice")),
        "userinfo token": (("/userinfo", httpx.Response(401, headers={"www-authenticate": 'Bearer error="x"'})),
                           lambda rp, fake: rp.userinfo(ACCESS_TOKEN)),
        "introspection": (("/introspect", json_response({"token": ACCESS_TOKEN})),
                          lambda rp, fake: rp.introspect(ACCESS_TOKEN)),
        "revocation": (("/revoke", text_response(REFRESH_TOKEN, 500)), lambda rp, fake: rp.revoke(REFRESH_TOKEN)),
        "device authorization": (("/device", json_response({**DEVICE, "user_code": None})),
                                 lambda rp, fake: rp.device_authorization()),
        "device denied": (("/token", json_response({"error": "access_denied"}, 400)),
                          lambda rp, fake: poll_on(rp, POLLED)),
        "device expired": (("/token", PENDING), lambda rp, fake: poll_on(
            rp, DeviceAuthorization(DEVICE_CODE, "U", f"{ISSUER}/d", None, NOW + 12, 5))),
        "client credentials": (("/token", httpx.Response(401)), lambda rp, fake: rp.client_credentials()),
        "stored request": (("/token", TOKENS), lambda rp, fake: AuthorizationRequest.from_dict(
            {"url": 1, "state": 2, "nonce": None, "code_verifier": VERIFIER, "redirect_uri": REDIRECT_URI})),
    }


@pytest.mark.parametrize("scenario", list(_scenarios()))
def test_no_secret_in_any_error(scenario: str) -> None:
    (path, answer), call = _scenarios()[scenario]
    fake = FakeProvider().on(path, answer)
    with client(fake) as rp, pytest.raises(ClientError) as caught:
        call(rp, fake)
    shown, exc = [], caught.value
    seen: BaseException | None = exc
    while seen is not None:
        shown += [str(seen), repr(seen), json.dumps([str(a) for a in seen.args])]
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    leaked = [s for s in SECRETS if any(s in text for text in shown)]
    assert not leaked, f"{type(exc).__name__}: {shown}"
