"""Resource indicators (RFC 8707): which audiences a token may be minted for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from .errors import OAuthError

__all__ = ["InvalidTarget", "requested_resources"]


class InvalidTarget(OAuthError):
    error = "invalid_target"


def requested_resources(params: Mapping[str, str], allowed: Iterable[str]) -> tuple[str, ...]:
    """The `resource` values of a request (repeatable; the web layer joins them with spaces, which an
    absolute URI cannot contain), each an absolute URI without fragment (§2) that is in `allowed`."""
    values = tuple(dict.fromkeys((params.get("resource") or "").split()))
    allowed = set(allowed)
    for value in values:
        try:
            parts = urlsplit(value)
        except ValueError:  # e.g. an unbalanced IPv6 bracket
            raise InvalidTarget("resource must be an absolute URI without a fragment") from None
        if not parts.scheme or not parts.netloc or parts.fragment or "#" in value:
            raise InvalidTarget("resource must be an absolute URI without a fragment")
        if value not in allowed:
            raise InvalidTarget("This client may not request tokens for that resource")
    return values
