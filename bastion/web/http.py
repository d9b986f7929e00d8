"""Request parsing and error rendering shared by every route."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.responses import Response

from ..core.errors import InvalidClient, InvalidRequest, InvalidToken, MissingToken, OAuthError

__all__ = [
    "CORS_HEADERS",
    "MAX_BODY",
    "json_bytes",
    "json_response",
    "oauth_error_response",
    "parse_params",
    "parse_query",
    "read_form",
    "request_params",
]

MAX_BODY = 64 * 1024
MAX_FIELDS = 200
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, DPoP",
    "Access-Control-Max-Age": "3600",
}


_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def json_bytes(body: Mapping[str, Any]) -> bytes:
    return _encode_json(body).encode()


class _JSONResponse(Response):
    """A JSON response whose headers but Content-Length were encoded beforehand: most of the headers
    of a token or UserInfo response are the same on every one."""

    media_type = "application/json"

    def __init__(self, content: bytes, status_code: int, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status_code
        self.background = None
        self.body = content
        self.raw_headers = [*raw_headers, (b"content-length", str(len(content)).encode())]


def _raw_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """Encoded by Starlette itself, once, but for the Content-Length that differs per response."""
    encoded = Response(headers=headers, media_type=_JSONResponse.media_type).raw_headers
    return [(name, value) for name, value in encoded if name != b"content-length"]


_RAW_NO_STORE = _raw_headers(NO_STORE)
_RAW_NO_STORE_CORS = _raw_headers({**NO_STORE, **CORS_HEADERS})


def json_response(body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None,
                  cache: bool = False) -> Response:
    content = json_bytes(body)
    if not cache and (headers is None or headers is CORS_HEADERS):
        return _JSONResponse(content, status, _RAW_NO_STORE if headers is None else _RAW_NO_STORE_CORS)
    all_headers = {**({} if cache else NO_STORE), **(headers or {})}
    return Response(content, status_code=status, headers=all_headers, media_type="application/json")


def oauth_error_response(error: OAuthError, headers: Mapping[str, str] | None = None,
                         bearer: bool = False) -> Response:
    """RFC 6749 §5.2, or for a protected resource (`bearer`) RFC 6750 §3: JSON, no-store, the challenge."""
    extra = dict(headers or {})
    if isinstance(error, MissingToken):
        extra["WWW-Authenticate"] = 'Bearer realm="bastion"'  # no error code without a token (RFC 6750 §3.1)
    elif bearer or isinstance(error, InvalidToken):
        desc = error.description.replace('"', "'")
        extra["WWW-Authenticate"] = f'Bearer realm="bastion", error="{error.error}", error_description="{desc}"'
    elif isinstance(error, InvalidClient):
        extra["WWW-Authenticate"] = 'Basic realm="bastion", charset="UTF-8"'
    return json_response(error.to_dict(), error.status, extra)


REPEATABLE = frozenset({"resource"})


def parse_params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Parameters must not repeat (RFC 6749 §3.1, §3.2); an empty value counts as absent."""
    params: dict[str, str] = {}
    seen: set[str] = set()
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            raise InvalidRequest("Parameters must not contain NUL characters")  # no database stores them
        if key in REPEATABLE:
            # RFC 8707 §2: `resource` may repeat; absolute URIs hold no spaces, so join with one.
            if value:
                params[key] = f"{params[key]} {value}" if key in params else value
            continue
        if key in seen:
            # The name is not echoed: error_description must stay within RFC 6749 §5.2's characters.
            raise InvalidRequest("A parameter is repeated")
        seen.add(key)
        if value != "":
            params[key] = value
    return params


def parse_query(query: str) -> list[tuple[str, str]]:
    try:
        return form_pairs(query)
    except ValueError:
        raise InvalidRequest("Too many parameters") from None


async def request_params(request: Request) -> dict[str, str]:
    """Parameters of an endpoint that takes GET (query) and POST (form body) alike."""
    pairs = await read_form(request) if request.method == "POST" else parse_query(request.url.query)
    return parse_params(pairs)


async def read_form(request: Request) -> list[tuple[str, str]]:
    """The urlencoded body as pairs; anything else is `invalid_request`, never a 500."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("The body must be application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise InvalidRequest("The request body is too large")
    try:
        return form_pairs(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The request body is not valid form data") from None


def form_pairs(text: str) -> list[tuple[str, str]]:
    """`parse_qsl(text, keep_blank_values=True, max_num_fields=200)`, with the percent-decoding done
    only for the pieces that have something to decode: a token request's values rarely do, and
    this parse is on every request with parameters (query or form)."""
    if text.count("&") >= MAX_FIELDS:
        raise ValueError("Max number of fields exceeded")
    pairs = []
    for piece in text.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if "%" in piece or "+" in piece:
            name, value = unquote_plus(name), unquote_plus(value)
        pairs.append((name, value))
    return pairs
