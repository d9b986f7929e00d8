"""The provider's metadata (OpenID Connect Discovery 1.0, RFC 8414), checked before it is trusted."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import DiscoveryError, printable

__all__ = ["ProviderMetadata", "check_url", "discovery_urls"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: object, what: str) -> str:
    """https, or http on loopback only: secrets and tokens travel to these URLs."""
    if not isinstance(url, str):
        raise DiscoveryError(f"{what} is missing from the provider's metadata")
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # both parse lazily, and raise ValueError on garbage
    except ValueError:
        parts, host = None, None
    secure = parts is not None and (parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host or "")))
    if not host or parts is None or parts.fragment or not secure or not url.isprintable() or " " in url:
        raise DiscoveryError(f"{what} {printable(url)!r} is not an https URL (or http on loopback)")
    return url


def discovery_urls(issuer: str) -> tuple[str, str]:
    """Where the metadata is: OIDC Discovery §4 appends to the issuer's path, RFC 8414 §3 inserts
    before it; they agree for an issuer without a path. Tried in this order."""
    check_url(issuer, "the issuer")
    parts = urlsplit(issuer)
    if parts.query or parts.fragment:
        raise DiscoveryError("an issuer has no query or fragment component")
    oidc = issuer.rstrip("/") + "/.well-known/openid-configuration"
    path = parts.path.rstrip("/")
    return oidc, f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{path}"


@dataclass(frozen=True)
class ProviderMetadata:
    """The metadata document; `issuer` is exactly the configured one (Discovery §4.3, RFC 8414 §3.3)."""

    document: Mapping[str, Any]

    @classmethod
    def parse(cls, document: Any, issuer: str) -> ProviderMetadata:
        if not isinstance(document, dict):
            raise DiscoveryError("the provider's metadata is not a JSON object")
        found = document.get("issuer")
        if found != issuer:
            shown = printable(found) if isinstance(found, str) else "none"
            raise DiscoveryError(f"the provider's metadata names issuer {shown!r}, not {issuer!r}")
        return cls(document)

    @property
    def issuer(self) -> str:
        return str(self.document["issuer"])

    def endpoint(self, name: str) -> str:
        """The URL of `name` (e.g. `token_endpoint`); DiscoveryError when the provider has none."""
        return check_url(self.document.get(name), name)

    def has(self, name: str) -> bool:
        return isinstance(self.document.get(name), str)

    def values(self, name: str) -> frozenset[str] | None:
        """A `*_supported` list as a set; None when absent or malformed (the provider did not say)."""
        value = self.document.get(name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None
        return frozenset(value)

    @property
    def sends_iss(self) -> bool:
        """RFC 9207: the authorization response carries `iss`, so its absence is an attack."""
        return self.document.get("authorization_response_iss_parameter_supported") is True
