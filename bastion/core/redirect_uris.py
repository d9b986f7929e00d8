"""Redirect URI rules: exact string match (RFC 9700 §4.1.3), except the port of loopback
redirect URIs for native apps, which may vary (RFC 8252 §7.3)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .models import Client

__all__ = ["LOOPBACK_HOSTS", "check_registered_uri", "redirect_uri_matches"]

LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")


# A loopback URI as a browser reads it: no userinfo, no backslash (WHATWG turns `\\` into `/`),
# a numeric port or none, then path and query. Only the port may differ from the registered URI.
_LOOPBACK = re.compile(r"http://(127\.0\.0\.1|\[::1\])(?::([0-9]{1,5}))?([/?][^\\#@\s]*)?")


def _loopback_without_port(uri: str) -> tuple[str, str] | None:
    match = _LOOPBACK.fullmatch(uri)
    if match is None or (match.group(2) is not None and int(match.group(2)) > 65535):
        return None
    return match.group(1), match.group(3) or "/"


def redirect_uri_matches(client: Client, requested: str) -> bool:
    if requested in client.redirect_uris:
        return True
    if client.application_type != "native":
        return False
    wanted = _loopback_without_port(requested)
    return wanted is not None and any(_loopback_without_port(r) == wanted for r in client.redirect_uris)


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
