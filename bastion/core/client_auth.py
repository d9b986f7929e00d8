"""Client authentication at the token endpoint (RFC 6749 §2.3): client_secret_basic,
client_secret_post, or none for public clients. Exactly one method per request."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from urllib.parse import unquote

from .errors import InvalidClient, InvalidRequest
from .models import Client
from .provider import Provider
from .secrets import constant_time_equal, hash_secret

__all__ = ["SECRET_METHODS", "authenticate_client"]

SECRET_METHODS = ("client_secret_basic", "client_secret_post")


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("Unsupported authorization scheme")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # ValueError covers non-ASCII input and UnicodeDecodeError
        raise InvalidClient("Malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("Malformed Basic credentials")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


async def authenticate_client(provider: Provider, params: Mapping[str, str], authorization: str | None) -> Client:
    form_id, form_secret = params.get("client_id"), params.get("client_secret")
    secret: str | None
    if authorization:
        if form_secret is not None:
            raise InvalidRequest("Use one client authentication method per request")
        client_id, secret = _basic_credentials(authorization)
        if form_id is not None and form_id != client_id:
            raise InvalidRequest("client_id does not match the authenticated client")
        method = "client_secret_basic"
    elif form_id:
        client_id, secret = form_id, form_secret
        method = "client_secret_post" if form_secret is not None else "none"
    else:
        raise InvalidClient("Client authentication is required")

    if "\x00" in client_id or len(client_id) > 255:
        raise InvalidClient("Client authentication failed")
    client = await provider.client(client_id)
    if client is None:
        raise InvalidClient("Client authentication failed", detail=f"unknown client {client_id!r}")
    if client.is_public:
        if method != "none":
            raise InvalidClient("Client authentication failed", detail="public client sent a secret")
        return client
    if method == "none" or client.secret_hash is None or secret is None:
        raise InvalidClient("Client authentication failed", detail="confidential client sent no secret")
    if method != client.token_endpoint_auth_method:
        # The registered method is the only one accepted (RFC 7591 §2), as node oidc-provider does.
        raise InvalidClient(f"This client authenticates with {client.token_endpoint_auth_method}")
    # A secret is 256 random bits, so SHA-256 is the right storage hash; compare in constant time.
    if not constant_time_equal(hash_secret(secret), client.secret_hash):
        raise InvalidClient("Client authentication failed", detail=f"wrong secret for {client_id!r}")
    return client
