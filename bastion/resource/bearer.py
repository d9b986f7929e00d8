"""RFC 6750 at the HTTP edge: read the bearer token from a request, and say why it was refused.

Framework-free, so that the Flask and FastAPI integrations share one reading of the RFC.
"""

from __future__ import annotations

import re

from .validator import B64TOKEN, InsufficientScope, InvalidToken, MissingToken

__all__ = ["bearer_token", "www_authenticate"]

_AUTHORIZATION = re.compile(rf"(?i:bearer) +({B64TOKEN.pattern}) *")
_NOT_DESCRIPTION = re.compile(r'[^\x20-\x21\x23-\x5b\x5d-\x7e]')  # RFC 6750 §3: no quote, no backslash
_NOT_SCOPE_TOKEN = re.compile(r'[^\x21\x23-\x5b\x5d-\x7e]')


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header (RFC 6750 §2.1).

    No header, or another scheme (e.g. Basic), is `MissingToken`: the request did not try bearer
    authentication, so the challenge carries no error (§3.1). A malformed bearer header is `InvalidToken`.
    """
    if not authorization or not authorization.strip():
        raise MissingToken("no access token")
    scheme = authorization.strip().split(" ", 1)[0]
    if scheme.lower() != "bearer":
        raise MissingToken("no bearer access token")
    match = _AUTHORIZATION.fullmatch(authorization.strip())
    if match is None:
        raise InvalidToken("malformed authorization header")
    return match.group(1)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def www_authenticate(exc: InvalidToken | InsufficientScope, realm: str | None = None) -> str:
    """The `WWW-Authenticate` value answering `exc` (send it with `exc.status`), per RFC 6750 §3."""
    params = [f"realm={_quoted(realm)}"] if realm is not None else []
    if not isinstance(exc, MissingToken):
        params.append(f'error="{exc.error}"')
        description = _NOT_DESCRIPTION.sub("?", str(exc))
        if description:
            params.append(f'error_description="{description}"')
    if isinstance(exc, InsufficientScope) and exc.scopes:
        params.append('scope="' + " ".join(_NOT_SCOPE_TOKEN.sub("?", s) for s in exc.scopes if s) + '"')
    return "Bearer " + ", ".join(params) if params else "Bearer"
