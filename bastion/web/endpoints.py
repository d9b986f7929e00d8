"""JSON endpoints: discovery, JWKS, token, userinfo."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response

from ..core.client_auth import authenticate_client
from ..core.endpoints.discovery import provider_metadata
from ..core.endpoints.introspection import introspect
from ..core.endpoints.revocation import revoke
from ..core.endpoints.token import token_endpoint
from ..core.endpoints.userinfo import userinfo as userinfo_claims
from ..core.errors import InvalidRequest, InvalidToken, MissingToken, OAuthError
from ..core.models import Client
from ..core.provider import Provider
from .http import CORS_HEADERS, json_bytes, json_response, oauth_error_response, parse_params, read_form

__all__ = ["discovery", "introspection", "jwks", "preflight", "revocation", "token", "userinfo"]

log = logging.getLogger("bastion.endpoints")
PUBLIC_CACHE = {"Cache-Control": "public, max-age=300"}


async def preflight(request: Request) -> Response:
    return Response(status_code=204, headers=CORS_HEADERS)


class _Serialized:
    """The JSON bytes of a document that changes rarely, rebuilt only when its source object is
    replaced (new settings; a new key set after rotation): no dict building or JSON encoding per request."""

    def __init__(self, build: Callable[[Any], Mapping[str, Any]]) -> None:
        self.build, self.source, self.body = build, cast(object, None), b""

    def response(self, source: object) -> Response:
        if source is not self.source:
            self.body, self.source = json_bytes(self.build(source)), source
        return Response(self.body, headers=_STATIC_HEADERS, media_type="application/json")


_STATIC_HEADERS = {**CORS_HEADERS, **PUBLIC_CACHE}
_metadata = _Serialized(provider_metadata)
_jwks = _Serialized(lambda keys: keys.jwks)


async def discovery(request: Request) -> Response:
    provider: Provider = request.app.state.provider
    return _metadata.response(provider.settings)


async def jwks(request: Request) -> Response:
    provider: Provider = request.app.state.provider
    return _jwks.response(provider.keys)


async def token(request: Request) -> Response:
    provider: Provider = request.app.state.provider
    try:
        params = parse_params(await read_form(request))
        body = await token_endpoint(provider, params, request.headers.get("authorization"))
    except OAuthError as exc:
        log.info("token request failed: %s %s", exc.error, exc.detail or exc.description)
        return oauth_error_response(exc, CORS_HEADERS)
    return json_response(body, headers=CORS_HEADERS)


async def _authenticated(request: Request) -> tuple[Provider, Client, dict[str, str]]:
    provider: Provider = request.app.state.provider
    params = parse_params(await read_form(request))
    client = await authenticate_client(provider, params, request.headers.get("authorization"))
    return provider, client, {k: v for k, v in params.items() if k not in ("client_id", "client_secret")}


async def introspection(request: Request) -> Response:
    try:
        provider, client, params = await _authenticated(request)
        body = await introspect(provider, client, params)
    except OAuthError as exc:
        return oauth_error_response(exc)
    return json_response(body)


async def revocation(request: Request) -> Response:
    try:
        provider, client, params = await _authenticated(request)
        await revoke(provider, client, params)
    except OAuthError as exc:
        return oauth_error_response(exc, CORS_HEADERS)
    return Response(status_code=200, headers={**CORS_HEADERS, "Cache-Control": "no-store"})


async def _bearer_token(request: Request) -> str:
    """RFC 6750 §2.1 (header) or §2.2 (form body); never the query string (RFC 9700 §4.3.2)."""
    if "access_token" in request.query_params:
        raise InvalidRequest("Access tokens in the query string are not accepted")
    header = request.headers.get("authorization")
    form: dict[str, str] = {}
    if request.method == "POST" and request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        form = parse_params(await read_form(request))
    if header and "access_token" in form:
        raise InvalidRequest("Send the access token in one place only")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise InvalidToken("Bearer token required")
        return value.strip()
    if "access_token" in form:
        return form["access_token"]
    raise MissingToken("Bearer token required")


async def userinfo(request: Request) -> Response:
    provider: Provider = request.app.state.provider
    try:
        body = await userinfo_claims(provider, await _bearer_token(request))
    except OAuthError as exc:
        return oauth_error_response(exc, CORS_HEADERS, bearer=True)
    return json_response(body, headers=CORS_HEADERS)


