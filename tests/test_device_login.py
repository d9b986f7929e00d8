"""`bastion device-login`: what the command itself adds to `bastion.client`'s device flow.

The polling rules (intervals, slow_down, timeouts, expiry, malformed answers) are the client's and
are tested with it in tests/client/. Here: what the terminal shows (the instructions, a QR code
that is segno's rendering of the complete verification URI, the verified ID token claims) and what it
never shows (tokens, the device code, the client secret, a provider's escape codes), and the exit
codes. Mostly against the real provider in-process, a "user" approving on the /device pages while
the command waits; a tiny fake provider only where a hostile one is needed.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import segno

from bastion import device_login
from bastion.client import InvalidResponse, TokenSet
from bastion.core import jose
from bastion.core.models import Client
from bastion.core.provider import Provider
from bastion.core.secrets import hash_secret
from bastion.device_login import run_device_login, unverified_claims
from tests.conftest import ISSUER, on_both_backends
from tests.web.test_device import advance, approve

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TV_SECRET = "tv-secret-" + "s" * 40
USER_CODE = r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}"


async def register(provider: Provider, client_id: str, secret: str | None = None, opaque: bool = False) -> None:
    """A device client; named "Living Room TV" for every test, since `approve` checks the consent page."""
    await provider.store.create_client(Client(
        client_id=client_id, client_name="Living Room TV", redirect_uris=(),
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
        secret_hash=hash_secret(secret) if secret else None, application_type="native",
        grant_types=(GRANT, "refresh_token"), access_token_format="opaque" if opaque else "jwt",
        created_at=provider.now()))


class Phone:
    """Time for the command's polling, and the user on their phone: the waits advance the provider's
    clock and the client's together (near real time, since the ID token's iat and exp are checked),
    and the user opens the /device pages and decides during the second wait (after one pending poll).

    Hooks on the command's HTTP client record what the provider sent it, to look for in the output."""

    def __init__(self, http: httpx.AsyncClient, provider: Provider, decision: str = "allow") -> None:
        self.http, self.provider, self.decision = http, provider, decision
        self.start, self.elapsed = time.time(), 0.0
        self.sleeps: list[float] = []
        self.authorizations: list[dict[str, Any]] = []
        self.device_codes: list[str] = []
        self.page: str | None = None
        http.event_hooks = {"request": [self._request], "response": [self._response]}

    async def _request(self, request: httpx.Request) -> None:
        if request.url.path == "/token":
            self.device_codes += parse_qs(request.content.decode()).get("device_code", [])

    async def _response(self, response: httpx.Response) -> None:
        if response.request.url.path == "/device_authorization":
            await response.aread()
            self.authorizations.append(response.json())

    def clock(self) -> float:
        return self.start + self.elapsed

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += seconds
        advance(self.provider, seconds)
        if len(self.sleeps) == 2:
            # A browser of its own (its own cookies) on the same app.
            async with httpx.AsyncClient(transport=self.http._transport, base_url=ISSUER) as browser:
                done = await approve(browser, self.authorizations[-1]["user_code"], self.decision)
            self.page = done.text

    async def login(self, client_id: str, secret: str | None = None, scope: str = "openid profile offline_access",
                    out: io.StringIO | None = None) -> TokenSet:
        return await run_device_login(ISSUER, client_id, secret, scope, out=out or io.StringIO(), http=self.http,
                                      sleep=self.sleep, clock=self.clock)


def printed_qr(output: str) -> list[list[int]]:
    """The modules of the half-block QR code in `output` (1 light, 0 dark: segno's terminal output
    draws light modules), quiet zone included."""
    lines = [line for line in output.split("\n") if line.strip() and set(line) <= set(" ▀▄█")]
    rows: list[list[int]] = []
    for line in lines:
        rows.append([0 if c in "▀█" else 1 for c in line])
        rows.append([0 if c in "▄█" else 1 for c in line])
    return rows


def qr_rows(content: str) -> list[list[int]]:
    """segno's own module matrix of a regular QR code of `content`, with its quiet zone."""
    code = segno.make_qr(content)
    assert not code.is_micro
    return [list(row) for row in code.matrix_iter(border=code.default_border_size)]


def assert_no_secrets(output: str, *secrets: str | None) -> None:
    for secret in secrets:
        if secret:
            assert secret not in output
            for part in secret.split("."):  # nor a piece of a JWT (its payload segment, say)
                assert len(part) < 16 or part not in output


def arguments(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    device_login.add_arguments(parser)
    return parser.parse_args(list(argv))


@on_both_backends
async def test_logs_in_showing_where_to_go_and_the_verified_id_token_claims_but_no_secret(
        http: httpx.AsyncClient, provider: Provider) -> None:
    await register(provider, "tv", TV_SECRET)
    phone = Phone(http, provider)
    out = io.StringIO()
    tokens = await phone.login("tv", TV_SECRET, out=out)
    output = out.getvalue()
    [authorization] = phone.authorizations
    assert phone.page is not None and "Device connected" in phone.page
    assert phone.sleeps == [5, 5]  # pending; approved during the second wait: tokens

    # Where to go and what to type, and a QR code carrying the code already filled in.
    assert f"\n    {authorization['verification_uri']}\n" in output
    assert authorization["verification_uri"] == f"{ISSUER}/device"
    assert f"and enter the code:\n\n    {authorization['user_code']}\n" in output
    assert "Or scan this QR code with the code already filled in:" in output
    complete = authorization["verification_uri_complete"]
    assert complete == f"{ISSUER}/device?user_code={authorization['user_code']}"
    expected = qr_rows(complete)
    assert printed_qr(output)[: len(expected)] == expected
    assert "the code expires in about 10 min" in output
    assert "\x1b" not in output and "\\u" not in output  # plain text: survives a pipe, nothing needed escaping

    # The ID token's claims, as verified by the client against the provider's keys.
    assert tokens.id_token is not None and tokens.claims is not None
    assert jose.verify(tokens.id_token, provider.keys.verification_keys, ["RS256"]).claims == tokens.claims
    assert tokens.subject == "user-alice" and tokens.claims["aud"] == "tv"
    shown = json.dumps(dict(tokens.claims), indent=2, ensure_ascii=False, sort_keys=True)
    assert f"\nID token claims (verified):\n{shown}\n" in output
    assert '"sub": "user-alice"' in output and '"amr": [\n    "pwd"\n  ]' in output
    access = unverified_claims(tokens.access_token)
    assert access is not None and access["client_id"] == "tv" and access["sub"] == "user-alice"
    assert "\nAccess token claims (decoded for display only; the API verifies them):\n" in output
    assert f'"jti": "{access["jti"]}"' in output
    assert (f"\nLogged in: token_type Bearer, expires_in {tokens.raw['expires_in']}, scope {tokens.scope}, "
            "with a refresh token. The tokens themselves are secrets and not shown.\n") in output

    # Never a token, the device code or the client secret.
    assert phone.device_codes and set(phone.device_codes) == {authorization["device_code"]}
    assert tokens.refresh_token is not None
    assert_no_secrets(output, tokens.access_token, tokens.refresh_token, tokens.id_token,
                      authorization["device_code"], TV_SECRET)


async def test_an_opaque_access_token_is_announced_as_such_and_not_printed(
        http: httpx.AsyncClient, provider: Provider) -> None:
    await register(provider, "opaque-tv", opaque=True)
    phone = Phone(http, provider)
    out = io.StringIO()
    tokens = await phone.login("opaque-tv", scope="openid profile", out=out)
    output = out.getvalue()
    assert unverified_claims(tokens.access_token) is None
    assert "\nThe access token is opaque (not a JWT), so it has no claims to show.\n" in output
    assert "Access token claims" not in output
    assert "ID token claims (verified)" in output and '"sub": "user-alice"' in output
    assert tokens.claims is not None and "at_hash" in tokens.claims  # the client checked it against this token
    assert "no refresh token" in output  # no offline_access asked for
    assert_no_secrets(output, tokens.access_token, tokens.id_token, *phone.device_codes)


async def test_denied_on_the_device_page_the_command_exits_1_with_access_denied(
        http: httpx.AsyncClient, provider: Provider, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    await register(provider, "tv", TV_SECRET)
    phone = Phone(http, provider, decision="deny")
    real = device_login.run_device_login
    called: list[tuple[Any, ...]] = []

    async def in_process(*args: Any, **kwargs: Any) -> TokenSet:
        # `command` would create its own HTTP client: keep everything else, run it on the app in-process.
        called.append(args)
        return await real(*args, **kwargs, http=http, sleep=phone.sleep, clock=phone.clock)

    monkeypatch.setattr(device_login, "run_device_login", in_process)
    args = arguments("--issuer", ISSUER, "--client-id", "tv", "--client-secret", TV_SECRET)
    assert await device_login.command(None, args) == 1
    assert called == [(ISSUER, "tv", TV_SECRET, "openid profile")]  # the default scope
    assert phone.page is not None and "Request denied" in phone.page
    assert len(phone.sleeps) == 2  # no wait (nor poll) after the denial
    captured = capsys.readouterr()
    assert captured.err.startswith("bastion: device login failed: access_denied")
    assert captured.err.count("\n") == 1
    assert_no_secrets(captured.err, TV_SECRET, *phone.device_codes)


async def test_a_login_exits_0_with_the_instructions_and_the_claims_on_standard_output(
        http: httpx.AsyncClient, provider: Provider, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    await register(provider, "tv")
    phone = Phone(http, provider)
    real = device_login.run_device_login

    async def in_process(*args: Any, **kwargs: Any) -> TokenSet:
        return await real(*args, **kwargs, http=http, sleep=phone.sleep, clock=phone.clock)

    monkeypatch.setattr(device_login, "run_device_login", in_process)
    assert await device_login.command(None, arguments("--issuer", ISSUER, "--client-id", "tv")) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    # What the command prints goes to the standard output of the moment it runs (the one a caller
    # or a test redirected), as its error message goes to the current standard error.
    assert phone.authorizations[0]["user_code"] in captured.out
    assert "ID token claims (verified)" in captured.out


def refuse_any_request(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    sent: list[httpx.Request] = []

    async def send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        sent.append(request)
        raise httpx.ConnectError("no network in this test", request=request)

    monkeypatch.setattr(httpx.AsyncClient, "send", send)
    return sent


@pytest.mark.parametrize("issuer", ["http://example.com", "ftp://op.example", "https://op.example?x=1", "op.example"])
async def test_an_insecure_or_malformed_issuer_exits_1_before_any_request(
        issuer: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    sent = refuse_any_request(monkeypatch)
    assert await device_login.command(None, arguments("--issuer", issuer, "--client-id", "tv",
                                                      "--client-secret", TV_SECRET)) == 1
    assert sent == []
    captured = capsys.readouterr()
    assert captured.err.startswith("bastion: device login failed: ")
    assert "https" in captured.err or "query" in captured.err
    assert TV_SECRET not in captured.err and captured.out == ""


async def test_an_unreachable_provider_exits_1_with_a_network_message(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    args = arguments("--issuer", "http://127.0.0.1:9", "--client-id", "tv", "--client-secret", TV_SECRET)
    assert await device_login.command(None, args) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("bastion: device login failed: cannot reach the provider: ConnectError")
    assert TV_SECRET not in captured.err and captured.out == ""


# --- a hostile provider ---------------------------------------------------------------------------

CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e", "\u2066", "\r", "\b")
HOSTILE = "\x1b[2J\x1b]0;pwned\x07\u202eEve\u2066\x9b31m\r\b"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class HostileProvider:
    """Speaks RFC 8628 correctly, but every string it sends tries to drive the terminal."""

    def __init__(self, token_error: dict[str, str] | None = None) -> None:
        self.token_error = token_error
        self.verification_uri = f"{ISSUER}/device"
        self.access_token = ".".join([b64(b'{"alg":"none"}'), b64(json.dumps({
            "sub": "eve", "client_id": "tv", "name": "Eve" + HOSTILE, HOSTILE: "key"}).encode()), b64(b"sig" * 20)])

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": ISSUER, "token_endpoint": f"{ISSUER}/token",
                                             "device_authorization_endpoint": f"{ISSUER}/device_authorization",
                                             "grant_types_supported": [GRANT]})
        if path == "/device_authorization":
            return httpx.Response(200, json={
                "device_code": "d" * 43, "user_code": "AB\x1b[31mCD\u202eEF\x07",
                "verification_uri": self.verification_uri, "expires_in": 600, "interval": 5,
                "verification_uri_complete": f"{ISSUER}/device?user_code=AB%1B%5B31mCD"})
        assert path == "/token"
        if self.token_error is not None:
            return httpx.Response(400, json=self.token_error)
        return httpx.Response(200, json={"access_token": self.access_token, "token_type": "Bearer",
                                         "expires_in": 600, "scope": "profile" + HOSTILE})

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))


async def no_wait(seconds: float) -> None:
    return None


async def test_provider_strings_cannot_drive_the_terminal() -> None:
    hostile = HostileProvider()
    out = io.StringIO()
    async with hostile.client() as http:
        tokens = await run_device_login(ISSUER, "tv", scope="profile", out=out, http=http, sleep=no_wait)
    output = out.getvalue()
    for control in CONTROLS:
        assert control not in output, repr(control)
    # Escaped, not dropped: the user sees that something odd was sent.
    assert "\n    AB\\u001b[31mCD\\u202eEF\\u0007\n" in output
    assert "scope profile\\u001b[2J\\u001b]0;pwned\\u0007\\u202eEve\\u2066\\u009b31m\\u000d\\u0008" in output
    assert '"name": "Eve\\u001b[2J' in output
    assert "No ID token was issued (the scope did not include openid)." in output
    expected = qr_rows("https://op.example/device?user_code=AB%1B%5B31mCD")  # in the QR code, only as modules
    assert printed_qr(output)[: len(expected)] == expected
    assert_no_secrets(output, tokens.access_token, "d" * 43)


async def test_a_verification_uri_with_control_characters_is_refused_and_not_echoed() -> None:
    hostile = HostileProvider()
    hostile.verification_uri = f"{ISSUER}/device\x1b[8m\u202e"
    async with hostile.client() as http:
        with pytest.raises(InvalidResponse) as caught:
            await run_device_login(ISSUER, "tv", scope="profile", out=io.StringIO(), http=http, sleep=no_wait)
    for control in CONTROLS:
        assert control not in str(caught.value), repr(control)


async def test_a_provider_error_description_cannot_drive_the_terminal_either(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    hostile = HostileProvider({"error": "access_denied", "error_description": "no" + HOSTILE})
    real: Callable[..., Awaitable[TokenSet]] = device_login.run_device_login

    async with hostile.client() as http:
        async def on_the_fake(*args: Any, **kwargs: Any) -> TokenSet:
            return await real(*args, **kwargs, http=http, sleep=no_wait)

        monkeypatch.setattr(device_login, "run_device_login", on_the_fake)
        assert await device_login.command(None, arguments("--issuer", ISSUER, "--client-id", "tv")) == 1
    err = capsys.readouterr().err
    assert err.startswith("bastion: device login failed: access_denied: no")
    for control in CONTROLS:
        assert control not in err, repr(control)


def test_unverified_claims_decodes_jwts_only() -> None:
    payload = b64(json.dumps({"sub": "alice"}).encode())
    assert unverified_claims(f"h.{payload}.s") == {"sub": "alice"}
    for token in ("opaque-token", "a.b", "a.!!!.c", f"h.{b64(b'[1]')}.s", "a.b.c.d.e", f"h.{b64(b'[' * 5000)}.s"):
        assert unverified_claims(token) is None
