"""`bastion device-login` against a fake RFC 8628 provider on httpx.MockTransport.

The peer is faked over HTTP only because the real device endpoints are not built yet; the end-to-end
test against a running Bastion replaces it then. Time is faked too: `sleep` advances a clock the
provider reads, so the provider can check that no poll comes sooner than the interval it asked for.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import httpx
import pytest
import segno

from bastion import device_login
from bastion.device_login import (
    DEVICE_CODE_GRANT,
    AccessDenied,
    DeviceLoginError,
    DiscoveryError,
    ExpiredToken,
    run_device_login,
    unverified_claims,
)

ISSUER = "https://op.example"
CLIENT_ID = "tv-app"
USER_CODE = "WDJB-MJHT"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims: dict[str, Any]) -> str:
    """An unsigned-looking but well-formed compact JWS; the client only decodes it for display."""
    header = b64(json.dumps({"alg": "RS256", "typ": "at+jwt", "kid": "k1"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}.{b64(secrets.token_bytes(64))}"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeProvider:
    """A small RFC 8628 provider: discovery, /device_authorization, and /token answering the
    scripted `outcomes` in turn ("timeout" makes the transport time out instead)."""

    clock: FakeClock
    outcomes: list[str] = field(default_factory=lambda: ["success"])
    secret: str | None = None
    interval: int | None = 5
    expires_in: int = 600
    discovery: dict[str, Any] | None = None
    complete_uri: bool = True
    access_token: str = ""
    id_claims: dict[str, Any] = field(default_factory=lambda: {
        "iss": ISSUER, "sub": "alice", "aud": CLIENT_ID, "name": "Alice Liddell", "exp": 2000, "iat": 1000})
    device_authorization_override: dict[str, Any] | None = None
    device_code: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    refresh_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    requests: list[httpx.Request] = field(default_factory=list)
    polls: list[float] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    issued: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.access_token:
            self.access_token = jwt({"iss": ISSUER, "sub": "alice", "client_id": CLIENT_ID, "scope": "openid profile",
                                     "jti": secrets.token_hex(8), "exp": 2000})
        self._required = self.interval or 5

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    def token_polls(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == "/token"]

    def _authenticated(self, request: httpx.Request, form: dict[str, list[str]]) -> bool:
        if self.secret is None:
            return form.get("client_id") == [CLIENT_ID] and "authorization" not in request.headers
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        user, _, password = base64.b64decode(value).decode().partition(":")
        return (scheme == "Basic" and (unquote_plus(user), unquote_plus(password)) == (CLIENT_ID, self.secret)
                and "client_secret" not in form)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        form = parse_qs(request.content.decode())
        if request.method == "GET" and request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery or {
                "issuer": ISSUER, "token_endpoint": f"{ISSUER}/token",
                "device_authorization_endpoint": f"{ISSUER}/device_authorization",
                "grant_types_supported": ["authorization_code", DEVICE_CODE_GRANT]})
        if not self._authenticated(request, form):
            return httpx.Response(401, json={"error": "invalid_client"})
        if request.url.path == "/device_authorization":
            body: dict[str, Any] = {
                "device_code": self.device_code, "user_code": USER_CODE, "verification_uri": f"{ISSUER}/device",
                "expires_in": self.expires_in}
            if self.complete_uri:
                body["verification_uri_complete"] = f"{ISSUER}/device?user_code={USER_CODE}"
            if self.interval is not None:
                body["interval"] = self.interval
            return httpx.Response(200, json={**body, **(self.device_authorization_override or {})})
        assert request.url.path == "/token"
        assert form["grant_type"] == [DEVICE_CODE_GRANT] and form["device_code"] == [self.device_code]
        if self.polls and self.clock.now - self.polls[-1] < self._required:
            self.violations.append(f"polled after {self.clock.now - self.polls[-1]} s, interval {self._required} s")
        self.polls.append(self.clock.now)
        outcome = self.outcomes.pop(0)
        if outcome == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if outcome == "slow_down":
            self._required += 5
        if outcome != "success":
            return httpx.Response(400, json={"error": outcome}, headers={"Cache-Control": "no-store"})
        self.issued = {"access_token": self.access_token, "token_type": "Bearer", "expires_in": 600,
                       "scope": "openid profile", "refresh_token": self.refresh_token, "id_token": jwt(self.id_claims)}
        return httpx.Response(200, json=self.issued, headers={"Cache-Control": "no-store"})


async def login(provider: FakeProvider, out: io.StringIO | None = None, **kwargs: Any) -> dict[str, Any]:
    async with provider.client() as http:
        return await run_device_login(ISSUER, CLIENT_ID, provider.secret, out=out or io.StringIO(), http=http,
                                      sleep=provider.clock.sleep, clock=provider.clock, **kwargs)


def assert_no_secrets(output: str, provider: FakeProvider) -> None:
    for secret in (provider.access_token, provider.refresh_token, provider.device_code, provider.secret,
                   provider.issued.get("id_token")):
        if secret:
            assert secret not in output
    # Nor any recognisable piece of them (a JWT's payload segment, say).
    for part in provider.access_token.split("."):
        assert part not in output


async def test_pending_slow_down_pending_success_waits_the_right_intervals() -> None:
    clock = FakeClock()
    provider = FakeProvider(clock, ["authorization_pending", "slow_down", "authorization_pending", "success"])
    out = io.StringIO()
    tokens = await login(provider, out)
    assert tokens == provider.issued
    # Wait before the first poll; slow_down makes this and every later wait 5 s longer.
    assert clock.sleeps == [5, 5, 10, 10]
    assert provider.violations == [] and len(provider.token_polls()) == 4
    output = out.getvalue()
    assert "asking every 10 s" in output
    assert_no_secrets(output, provider)


async def test_every_slow_down_adds_five_seconds() -> None:
    clock = FakeClock()
    provider = FakeProvider(clock, ["slow_down", "slow_down", "slow_down", "success"], interval=3)
    await login(provider)
    assert clock.sleeps == [3, 8, 13, 18]
    assert provider.violations == []


async def test_interval_defaults_to_five_seconds() -> None:
    clock = FakeClock()
    provider = FakeProvider(clock, ["authorization_pending", "success"], interval=None)
    await login(provider)
    assert clock.sleeps == [5, 5]


async def test_a_timeout_while_polling_doubles_the_interval() -> None:
    clock = FakeClock()
    provider = FakeProvider(clock, ["authorization_pending", "timeout", "authorization_pending", "success"])
    await login(provider)
    assert clock.sleeps == [5, 5, 10, 10]


@pytest.mark.parametrize(("code", "kind", "words"), [
    ("access_denied", AccessDenied, "denied"),
    ("expired_token", ExpiredToken, "expired"),
    ("invalid_grant", DeviceLoginError, "refused"),
])
async def test_a_final_error_stops_polling_with_its_code(code: str, kind: type[DeviceLoginError], words: str) -> None:
    provider = FakeProvider(FakeClock(), ["authorization_pending", code, "success"])
    out = io.StringIO()
    with pytest.raises(kind) as caught:
        await login(provider, out)
    assert caught.value.error == code and words in str(caught.value)
    assert len(provider.token_polls()) == 2  # no poll after the final error
    assert provider.device_code not in str(caught.value) + repr(caught.value)
    assert_no_secrets(out.getvalue(), provider)


async def test_polling_stops_when_the_code_expires() -> None:
    clock = FakeClock()
    provider = FakeProvider(clock, ["authorization_pending"] * 10, expires_in=12)
    with pytest.raises(ExpiredToken) as caught:
        await login(provider)
    assert caught.value.error == "expired_token"
    # Polls at 5 s and 10 s; one at 15 s would come after the code's end at 12 s.
    assert [t - 1000 for t in provider.polls] == [5, 10] and clock.sleeps == [5, 5]


@pytest.mark.parametrize("announced", ["https://op.example/", "https://evil.example", None])
async def test_discovery_naming_another_issuer_is_refused(announced: str | None) -> None:
    provider = FakeProvider(FakeClock(), discovery={
        "issuer": announced, "token_endpoint": "https://evil.example/token",
        "device_authorization_endpoint": "https://evil.example/device_authorization"})
    with pytest.raises(DiscoveryError) as caught:
        await login(provider)
    assert caught.value.error == "issuer_mismatch"
    assert [r.url.path for r in provider.requests] == ["/.well-known/openid-configuration"]


@pytest.mark.parametrize("document", [
    {"issuer": ISSUER, "token_endpoint": f"{ISSUER}/token"},  # no device grant
    {"issuer": ISSUER, "token_endpoint": "http://op.example/token",
     "device_authorization_endpoint": f"{ISSUER}/device_authorization"},  # the secret would travel in clear
    {"issuer": ISSUER, "device_authorization_endpoint": f"{ISSUER}/device_authorization"},
])
async def test_unusable_discovery_documents_are_refused(document: dict[str, Any]) -> None:
    provider = FakeProvider(FakeClock(), discovery=document)
    with pytest.raises(DiscoveryError) as caught:
        await login(provider)
    assert caught.value.error == "invalid_discovery"


async def test_a_secret_is_sent_with_client_secret_basic_and_never_shown() -> None:
    provider = FakeProvider(FakeClock(), ["authorization_pending", "success"], secret="s3cr:t+/ x%" + "y" * 30)
    out = io.StringIO()
    await login(provider, out)
    posts = [r for r in provider.requests if r.method == "POST"]
    assert [r.url.path for r in posts] == ["/device_authorization", "/token", "/token"]
    for request in posts:  # the fake provider answered invalid_client otherwise; check the wire anyway
        assert request.headers["authorization"].startswith("Basic ")
        assert "client_secret" not in parse_qs(request.content.decode())
    assert_no_secrets(out.getvalue(), provider)


async def test_a_public_client_sends_its_client_id_in_the_form() -> None:
    provider = FakeProvider(FakeClock(), ["success"])
    await login(provider, scope="openid email")
    authorization = next(r for r in provider.requests if r.url.path == "/device_authorization")
    assert "authorization" not in authorization.headers
    assert parse_qs(authorization.content.decode()) == {"client_id": [CLIENT_ID], "scope": ["openid email"]}


def printed_qr(output: str) -> list[list[int]]:
    """The module rows of the half-block QR code in `output` (1 dark), quiet zone included."""
    lines = [line for line in output.split("\n") if line.strip() and set(line) <= set(" ▀▄█")]
    rows: list[list[int]] = []
    for line in lines:
        rows.append([0 if c in "▀█" else 1 for c in line])
        rows.append([0 if c in "▄█" else 1 for c in line])
    return rows


def qr_rows(content: str) -> list[list[int]]:
    code = segno.make_qr(content)
    return [list(row) for row in code.matrix_iter(border=code.default_border_size)]


@pytest.mark.parametrize("complete", [True, False])
async def test_prints_the_uri_the_user_code_and_a_qr_code(complete: bool) -> None:
    provider = FakeProvider(FakeClock(), complete_uri=complete)
    out = io.StringIO()
    await login(provider, out)
    output = out.getvalue()
    assert f"{ISSUER}/device" in output and USER_CODE in output
    # The QR code carries the complete URI (the code prefilled), else the plain page.
    target = f"{ISSUER}/device?user_code={USER_CODE}" if complete else f"{ISSUER}/device"
    expected = qr_rows(target)
    assert printed_qr(output)[: len(expected)] == expected
    assert "\x1b" not in output


async def test_prints_claims_decoded_for_display_only_and_no_token() -> None:
    provider = FakeProvider(FakeClock())
    out = io.StringIO()
    await login(provider, out)
    output = out.getvalue()
    assert "ID token claims (decoded for display only; the signature was not verified)" in output
    assert "Access token claims (decoded for display only" in output
    assert '"name": "Alice Liddell"' in output and '"client_id": "tv-app"' in output
    assert "\nLogged in: token_type Bearer, expires_in 600, scope openid profile, with a refresh token." in output
    assert "\\u" not in output  # nothing of ours needed escaping
    assert_no_secrets(output, provider)


async def test_an_opaque_access_token_is_not_printed() -> None:
    provider = FakeProvider(FakeClock(), access_token=secrets.token_urlsafe(32))
    out = io.StringIO()
    await login(provider, out)
    assert "opaque" in out.getvalue()
    assert_no_secrets(out.getvalue(), provider)


async def test_provider_strings_cannot_drive_the_terminal() -> None:
    provider = FakeProvider(FakeClock(), id_claims={"sub": "alice", "name": "\x1b[2J\x1b]0;pwned\x07Eve\u202e\u009b"},
                            device_authorization_override={"user_code": "AB\x1b[31mCD"})
    out = io.StringIO()
    await login(provider, out)
    output = out.getvalue()
    for control in ("\x1b", "\x07", "\u202e", "\u009b"):
        assert control not in output
    assert "Eve" in output and "\\u001b[31mCD" in output


@pytest.mark.parametrize("override", [
    {"device_code": None}, {"user_code": ""}, {"verification_uri": "javascript:alert(1)"},
    {"expires_in": "600"}, {"interval": 0}, {"interval": True}, {"verification_uri_complete": 7},
])
async def test_a_malformed_device_authorization_response_is_refused(override: dict[str, Any]) -> None:
    provider = FakeProvider(FakeClock(), device_authorization_override=override)
    out = io.StringIO()
    with pytest.raises(DeviceLoginError) as caught:
        await login(provider, out)
    assert caught.value.error == "invalid_response"
    assert provider.device_code not in str(caught.value) + out.getvalue()
    assert provider.token_polls() == []


async def test_a_device_authorization_error_is_raised_with_its_code() -> None:
    provider = FakeProvider(FakeClock(), secret="right-secret-" + "z" * 30)
    async with provider.client() as http:
        with pytest.raises(DeviceLoginError) as caught:
            await run_device_login(ISSUER, CLIENT_ID, "wrong-secret-" + "z" * 30, out=io.StringIO(), http=http,
                                   sleep=provider.clock.sleep, clock=provider.clock)
    assert caught.value.error == "invalid_client"
    assert "wrong-secret" not in str(caught.value)


@pytest.mark.parametrize("issuer", ["http://op.example", "ftp://op.example", "https://op.example?x=1"])
async def test_an_insecure_or_malformed_issuer_is_refused_before_any_request(issuer: str) -> None:
    provider = FakeProvider(FakeClock())
    async with provider.client() as http:
        with pytest.raises(DiscoveryError):
            await run_device_login(issuer, CLIENT_ID, out=io.StringIO(), http=http, sleep=provider.clock.sleep)
    assert provider.requests == []


async def test_a_network_failure_is_a_device_login_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        with pytest.raises(DeviceLoginError) as caught:
            await run_device_login("http://127.0.0.1:9", CLIENT_ID, out=io.StringIO(), http=http)
    assert caught.value.error == "network_error"


def test_unverified_claims_decodes_jwts_only() -> None:
    assert unverified_claims(jwt({"sub": "alice"})) == {"sub": "alice"}
    for token in ("opaque-token", "a.b", "a.!!!.c", f"h.{b64(b'[1]')}.s", "a.b.c.d.e"):
        assert unverified_claims(token) is None


async def test_the_command_reports_a_failure_on_stderr(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[tuple[Any, ...]] = []

    async def denied(*args: Any, **kwargs: Any) -> dict[str, Any]:
        seen.append(args)
        raise AccessDenied("access_denied", "the request was denied on the verification page")

    monkeypatch.setattr(device_login, "run_device_login", denied)
    parser = argparse.ArgumentParser()
    device_login.add_arguments(parser)
    args = parser.parse_args(["--issuer", ISSUER, "--client-id", CLIENT_ID, "--client-secret", "s" * 32])
    assert await device_login.command(None, args) == 1
    assert seen == [(ISSUER, CLIENT_ID, "s" * 32, "openid profile")]
    err = capsys.readouterr().err
    assert "access_denied" in err and "denied on the verification page" in err and "s" * 32 not in err

