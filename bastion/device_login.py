"""`bastion device-login`: the device authorization grant (RFC 8628) from the device's side.

A person on a terminal without a browser approves the login on their phone: this prints where to go
and the user code (and a QR code of the complete verification URI), polls the token endpoint as
RFC 8628 §3.5 demands, and shows the claims of the tokens it receives.

It is a minimal flow of its own until the client library (`bastion.client`) lands, which will take
it over; so it imports nothing of the provider and speaks only standard HTTP to any provider.
Nothing secret reaches the output or an exception message: not the client secret, the device code
or a token. Claims are decoded without verification, for display only, and the output says so.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import quote_plus, urlsplit

import httpx
import segno

__all__ = [
    "DEVICE_CODE_GRANT",
    "AccessDenied",
    "DeviceLoginError",
    "DiscoveryError",
    "ExpiredToken",
    "add_arguments",
    "command",
    "run_device_login",
    "unverified_claims",
]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_SCOPE = "openid profile"
DEFAULT_INTERVAL = 5  # RFC 8628 §3.2: the interval when the provider names none
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5: added to the interval on every slow_down
TIMEOUT = httpx.Timeout(10.0)

# RFC 6749 §5.2: the characters an error code may have; anything else is not an OAuth error.
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")

Sleep = Callable[[float], Awaitable[object]]


class DeviceLoginError(Exception):
    """The login did not complete. `error` is the RFC error code the provider sent (`access_denied`,
    `invalid_client`, ...) or, for a failure found here, one of `invalid_discovery`, `issuer_mismatch`,
    `invalid_response`, `network_error`; the message is safe to show (it never holds a secret)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.error = error
        self.message = message


class DiscoveryError(DeviceLoginError):
    """The provider's discovery document is unusable, or names another issuer (a mix-up)."""


class AccessDenied(DeviceLoginError):
    """The user denied the request on the verification page."""


class ExpiredToken(DeviceLoginError):
    """The device code expired before the user approved; a new login has to start over."""


@dataclass(frozen=True, slots=True)
class _Endpoints:
    device_authorization: str
    token: str


@dataclass(frozen=True, slots=True)
class _DeviceAuthorization:
    device_code: str = field(repr=False)  # a credential: kept out of reprs and tracebacks
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int


def _printable(text: str) -> str:
    """Escape what a terminal would interpret: the provider's strings must not move the cursor,
    recolour or hide text (ANSI and C1 controls, bidi overrides)."""
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_endpoint(url: object, what: str) -> str:
    """https, or http on loopback only: the client secret and the tokens travel to these URLs."""
    if not isinstance(url, str):
        raise DiscoveryError("invalid_discovery", f"{what} is missing from the discovery document")
    parts = urlsplit(url)
    secure = parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname or ""))
    if not parts.hostname or parts.fragment or not secure:
        shown = _printable(url)
        raise DiscoveryError("invalid_discovery", f"{what} {shown!r} is not an https URL (or http on loopback)")
    return url


def _client_auth(client_id: str, client_secret: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """The form fields and headers that authenticate the client: client_secret_basic with a secret
    (both parts form-urlencoded first, RFC 6749 §2.3.1), otherwise a public client's `client_id`."""
    if client_secret is None:
        return {"client_id": client_id}, {}
    credentials = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return {}, {"Authorization": f"Basic {base64.b64encode(credentials).decode('ascii')}"}


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


def _oauth_error(body: Mapping[str, Any] | None, status: int, what: str) -> DeviceLoginError:
    """The provider's error as a typed exception; a malformed answer is `invalid_response`."""
    code = body.get("error") if body is not None else None
    if not isinstance(code, str) or not _ERROR_CODE.fullmatch(code):
        return DeviceLoginError("invalid_response", f"the {what} gave an unusable answer (HTTP {status})")
    description = body.get("error_description") if body is not None else None
    message = {
        "access_denied": "the request was denied on the verification page",
        "expired_token": "the code expired before it was approved; run device-login again",
    }.get(code, f"the {what} refused the request")
    if isinstance(description, str) and description:
        message += f" ({_printable(description[:200])})"
    kind = {"access_denied": AccessDenied, "expired_token": ExpiredToken}.get(code, DeviceLoginError)
    return kind(code, message)


async def _discover(http: httpx.AsyncClient, issuer: str) -> _Endpoints:
    """OpenID Connect Discovery 1.0 §4; the document must name exactly our issuer (§4.3), or a
    provider could send us to endpoints of another one."""
    _check_endpoint(issuer, "the issuer")
    if urlsplit(issuer).query:
        raise DiscoveryError("invalid_discovery", "an issuer has no query component")
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = await http.get(url, headers={"Accept": "application/json"}, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise DeviceLoginError("network_error", f"cannot fetch the discovery document: {_describe(exc)}") from None
    body = _json_object(response) if response.status_code == 200 else None
    if body is None:
        raise DiscoveryError("invalid_discovery", f"no discovery document at {url} (HTTP {response.status_code})")
    if body.get("issuer") != issuer:
        found = body.get("issuer")
        shown = _printable(found) if isinstance(found, str) else "none"
        raise DiscoveryError("issuer_mismatch", f"the discovery document names issuer {shown!r}, not {issuer!r}")
    if "device_authorization_endpoint" not in body:
        raise DiscoveryError("invalid_discovery", "the provider does not offer the device authorization grant")
    return _Endpoints(
        device_authorization=_check_endpoint(body["device_authorization_endpoint"], "device_authorization_endpoint"),
        token=_check_endpoint(body.get("token_endpoint"), "token_endpoint"),
    )


def _describe(exc: httpx.HTTPError) -> str:
    return _printable(f"{type(exc).__name__} {exc}".strip())


async def _post(
    http: httpx.AsyncClient, url: str, form: Mapping[str, str], headers: Mapping[str, str]
) -> tuple[int, dict[str, Any] | None]:
    response = await http.post(url, data=dict(form), headers={"Accept": "application/json", **headers}, timeout=TIMEOUT)
    return response.status_code, _json_object(response)


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _display_uri(value: object) -> str | None:
    if not isinstance(value, str) or urlsplit(value).scheme not in ("https", "http") or not urlsplit(value).netloc:
        return None
    return value


def _device_authorization(body: Mapping[str, Any]) -> _DeviceAuthorization:
    """The RFC 8628 §3.2 response, every field checked, so that a malformed answer fails clearly."""
    device_code, user_code = body.get("device_code"), body.get("user_code")
    verification_uri = _display_uri(body.get("verification_uri"))
    expires_in = _positive_int(body.get("expires_in"))
    interval = _positive_int(body.get("interval", DEFAULT_INTERVAL))
    complete = body.get("verification_uri_complete")
    if (not isinstance(device_code, str) or not device_code or not isinstance(user_code, str) or not user_code
            or verification_uri is None or expires_in is None or interval is None
            or (complete is not None and _display_uri(complete) is None)):
        raise DeviceLoginError("invalid_response", "the device authorization response is malformed")
    return _DeviceAuthorization(device_code, user_code, verification_uri, _display_uri(complete), expires_in, interval)


def _print_instructions(out: TextIO, auth: _DeviceAuthorization) -> None:
    minutes = max(1, round(auth.expires_in / 60))
    print("To log in, open this page on your phone or computer:\n", file=out)
    print(f"    {_printable(auth.verification_uri)}\n", file=out)
    print(f"and enter the code:\n\n    {_printable(auth.user_code)}\n", file=out)
    target = auth.verification_uri_complete or auth.verification_uri
    what = "with the code already filled in" if auth.verification_uri_complete else "to open the page"
    print(f"Or scan this QR code {what}:\n", file=out)
    # A regular QR code (never Micro QR, which phone cameras do not read), drawn in half blocks so
    # that it is short enough for a terminal and survives being piped or logged (no escape codes).
    segno.make_qr(target).terminal(out=out, compact=True)
    print(f"\nWaiting for approval (the code expires in about {minutes} min)...", file=out, flush=True)


async def _poll(
    http: httpx.AsyncClient,
    token_endpoint: str,
    auth: _DeviceAuthorization,
    form: Mapping[str, str],
    headers: Mapping[str, str],
    out: TextIO,
    sleep: Sleep,
    clock: Callable[[], float],
) -> dict[str, Any]:
    """RFC 8628 §3.4-3.5: wait `interval` before each request, add 5 s on every `slow_down`, keep
    going on `authorization_pending`, stop on anything else and when the code has expired."""
    deadline = clock() + auth.expires_in
    interval = auth.interval
    request = {"grant_type": DEVICE_CODE_GRANT, "device_code": auth.device_code, **form}
    while True:
        if clock() + interval >= deadline:
            raise ExpiredToken("expired_token", "the code expired before it was approved; run device-login again")
        await sleep(interval)
        try:
            status, body = await _post(http, token_endpoint, request, headers)
        except httpx.TimeoutException:
            # §3.5: on a connection timeout, reduce the polling frequency (exponential backoff).
            interval *= 2
            print(f"The provider did not answer in time; asking every {interval} s now.", file=out, flush=True)
            continue
        except httpx.HTTPError as exc:
            raise DeviceLoginError("network_error", f"cannot reach the token endpoint: {_describe(exc)}") from None
        if status == 200 and body is not None:
            if not isinstance(body.get("access_token"), str) or not isinstance(body.get("token_type"), str):
                raise DeviceLoginError("invalid_response", "the token response lacks access_token or token_type")
            return body
        error = _oauth_error(body, status, "token endpoint")
        if error.error == "authorization_pending":
            continue
        if error.error == "slow_down":
            interval += SLOW_DOWN_STEP
            print(f"The provider asked to slow down; asking every {interval} s now.", file=out, flush=True)
            continue
        raise error


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload of a compact JWS, decoded WITHOUT checking the signature: for display only,
    never for a decision. None when the token is not a JWT (opaque, or an encrypted JWE)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, RecursionError):  # binascii.Error, JSONDecodeError, UnicodeDecodeError
        return None
    return claims if isinstance(claims, dict) else None


def _print_claims(out: TextIO, title: str, claims: Mapping[str, Any]) -> None:
    print(f"\n{title} (decoded for display only; the signature was not verified):", file=out)
    # json.dumps escapes newlines inside strings, so splitting on "\n" keeps every value whole.
    text = json.dumps(claims, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    print("\n".join(_printable(line) for line in text.split("\n")), file=out)


def _print_result(out: TextIO, tokens: Mapping[str, Any]) -> None:
    summary = [f"token_type {tokens['token_type']}"]
    for name in ("expires_in", "scope"):
        if isinstance(tokens.get(name), str | int):
            summary.append(f"{name} {tokens[name]}")
    summary.append("with a refresh token" if tokens.get("refresh_token") else "no refresh token")
    line = f"Logged in: {', '.join(summary)}. The tokens themselves are secrets and not shown."
    print("\n" + _printable(line), file=out)
    id_token = tokens.get("id_token")
    id_claims = unverified_claims(id_token) if isinstance(id_token, str) else None
    if id_claims is not None:
        _print_claims(out, "ID token claims", id_claims)
    elif id_token is not None:
        print("\nThe ID token could not be decoded.", file=out)
    else:
        print("\nNo ID token was issued (the scope did not include openid).", file=out)
    access_claims = unverified_claims(tokens["access_token"])
    if access_claims is not None:
        _print_claims(out, "Access token claims", access_claims)
    else:
        print("\nThe access token is opaque (not a JWT), so it has no claims to show.", file=out)
    out.flush()


async def _run(
    http: httpx.AsyncClient,
    issuer: str,
    client_id: str,
    client_secret: str | None,
    scope: str,
    out: TextIO,
    sleep: Sleep,
    clock: Callable[[], float],
) -> dict[str, Any]:
    endpoints = await _discover(http, issuer)
    form, headers = _client_auth(client_id, client_secret)
    request = {**form, "scope": scope} if scope else form
    try:
        status, body = await _post(http, endpoints.device_authorization, request, headers)
    except httpx.HTTPError as exc:
        reason = _describe(exc)
        raise DeviceLoginError("network_error", f"cannot reach the device authorization endpoint: {reason}") from None
    if status != 200 or body is None:
        raise _oauth_error(body, status, "device authorization endpoint")
    auth = _device_authorization(body)
    _print_instructions(out, auth)
    tokens = await _poll(http, endpoints.token, auth, form, headers, out, sleep, clock)
    _print_result(out, tokens)
    return tokens


async def run_device_login(
    issuer: str,
    client_id: str,
    client_secret: str | None = None,
    scope: str = DEFAULT_SCOPE,
    out: TextIO = sys.stdout,
    http: httpx.AsyncClient | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Log in with the device authorization grant and return the token response; raises a
    `DeviceLoginError` (with the RFC error code) when it does not complete. `sleep` and `clock` are
    the polling's notion of time, replaceable so that tests need not wait."""
    if http is not None:
        return await _run(http, issuer, client_id, client_secret, scope, out, sleep, clock)
    async with httpx.AsyncClient(timeout=TIMEOUT) as owned:
        return await _run(owned, issuer, client_id, client_secret, scope, out, sleep, clock)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `bastion device-login`."""
    parser.add_argument("--issuer", required=True, help="the provider's issuer URL")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", help="for a confidential client (sent with HTTP Basic)")
    parser.add_argument("--scope", default=DEFAULT_SCOPE, help=f'space-separated (default "{DEFAULT_SCOPE}")')


async def command(_settings: object, args: argparse.Namespace) -> int:
    """`bastion device-login`: 0 once logged in, 1 with the reason on stderr otherwise."""
    try:
        await run_device_login(args.issuer, args.client_id, args.client_secret, args.scope)
    except DeviceLoginError as exc:
        print(f"bastion: device login failed: {exc}", file=sys.stderr)
        return 1
    return 0
