"""`bastion device-login`: the device authorization grant (RFC 8628) from the device's side.

A person on a terminal without a browser approves the login on their phone: this prints where to go
and the user code (and a QR code of the complete verification URI), lets `bastion.client` poll the
token endpoint as RFC 8628 §3.5 demands, and shows the claims of the tokens it receives: the ID
token's verified by the client, the access token's decoded for display only (that is the API's to
verify). It speaks only standard HTTP, so it logs in to any provider. Nothing secret reaches the
output or an error message: not the client secret, the device code or a token.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TextIO

import httpx
import segno

from .client import AsyncClient, ClientError, DeviceAuthorization, TokenSet

__all__ = ["DEFAULT_SCOPE", "add_arguments", "command", "run_device_login", "unverified_claims"]

DEFAULT_SCOPE = "openid profile"

Sleep = Callable[[float], Awaitable[object]]


def _printable(text: str) -> str:
    """Escape what a terminal would interpret: the provider's strings must not move the cursor,
    recolour or hide text (ANSI and C1 controls, bidi overrides)."""
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def _print_instructions(out: TextIO, auth: DeviceAuthorization, now: float) -> None:
    minutes = max(1, round((auth.expires_at - now) / 60))
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
    print(f"\n{title}:", file=out)
    # json.dumps escapes newlines inside strings, so splitting on "\n" keeps every value whole.
    text = json.dumps(claims, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    print("\n".join(_printable(line) for line in text.split("\n")), file=out)


def _print_result(out: TextIO, tokens: TokenSet) -> None:
    summary = [f"token_type {tokens.token_type}"]
    for name in ("expires_in", "scope"):
        if isinstance(tokens.raw.get(name), str | int):
            summary.append(f"{name} {tokens.raw[name]}")
    summary.append("with a refresh token" if tokens.refresh_token else "no refresh token")
    line = f"Logged in: {', '.join(summary)}. The tokens themselves are secrets and not shown."
    print("\n" + _printable(line), file=out)
    if tokens.claims is not None:
        _print_claims(out, "ID token claims (verified)", tokens.claims)
    else:
        print("\nNo ID token was issued (the scope did not include openid).", file=out)
    access_claims = unverified_claims(tokens.access_token)
    if access_claims is not None:
        _print_claims(out, "Access token claims (decoded for display only; the API verifies them)", access_claims)
    else:
        print("\nThe access token is opaque (not a JWT), so it has no claims to show.", file=out)
    out.flush()


async def run_device_login(
    issuer: str,
    client_id: str,
    client_secret: str | None = None,
    scope: str = DEFAULT_SCOPE,
    out: TextIO | None = None,
    http: httpx.AsyncClient | None = None,
    sleep: Sleep | None = None,
    clock: Callable[[], float] = time.time,
) -> TokenSet:
    """Log in with the device authorization grant and return the tokens; raises a `ClientError`
    (a `ProviderError` with the RFC error code when the provider refused) when it does not complete.
    `sleep` and `clock` are the polling's notion of time, replaceable so that tests need not wait."""
    out = out or sys.stdout  # looked up now, not at import: redirect_stdout and capsys must see it
    async with AsyncClient(issuer, client_id, client_secret, http=http, clock=clock, sleep=sleep) as client:
        device = await client.device_authorization(scope or None)
        _print_instructions(out, device, clock())
        tokens = await client.poll_device_token(device)
    _print_result(out, tokens)
    return tokens


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
    except (ClientError, ValueError) as exc:  # ValueError: an issuer that is not a URL we may use
        print(f"bastion: device login failed: {exc}", file=sys.stderr)
        return 1
    return 0
