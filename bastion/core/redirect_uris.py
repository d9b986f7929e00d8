"""Redirect URI rules: exact string match (RFC 9700 §4.1.3), except the port of loopback
redirect URIs for native apps, which may vary (RFC 8252 §7.3)."""

from __future__ import annotations

from urllib.parse import urlsplit

from .models import Client

__all__ = ["LOOPBACK_HOSTS", "check_registered_uri", "redirect_uri_matches"]

LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")


def _without_port(uri: str) -> tuple[str, str, str, str, str] | None:
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    host = parts.netloc.rsplit("@", 1)[-1]
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return parts.scheme, host, parts.path, parts.query, parts.fragment


def redirect_uri_matches(client: Client, requested: str) -> bool:
    if requested in client.redirect_uris:
        return True
    if client.application_type != "native" or not requested.startswith("http://"):
        return False
    req = _without_port(requested)
    if req is None or req[1] not in LOOPBACK_HOSTS:
        return False
    return any(_without_port(r) == req for r in client.redirect_uris if r.startswith("http://"))


def check_registered_uri(uri: str, *, native: bool) -> str | None:
    """Why `uri` may not be registered, or None. No fragments; http only on loopback."""
    parts = urlsplit(uri)
    if not parts.scheme or parts.fragment or "#" in uri:
        return "must be an absolute URI without a fragment"
    if parts.scheme == "http":
        if parts.hostname not in ("127.0.0.1", "::1", "localhost"):
            return "http is allowed only for loopback addresses"
    elif parts.scheme != "https" and not (native and "." in parts.scheme):
        # Native apps may use private-use schemes in reverse-domain form (RFC 8252 §7.1).
        return "must use https (or http on loopback, or a private-use scheme for native apps)"
    if parts.scheme in ("http", "https") and not parts.netloc:
        return "must include a host"
    return None
