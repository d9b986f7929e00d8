"""Scopes and the claims each releases (OIDC Core §5.4)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "SCOPE_CLAIMS",
    "SCOPE_DESCRIPTIONS",
    "STANDARD_CLAIMS",
    "SUPPORTED_SCOPES",
    "describe_scope",
    "format_scope",
    "parse_scope",
]

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "openid": ("sub",),
    "profile": (
        "name", "family_name", "given_name", "middle_name", "nickname", "preferred_username", "profile",
        "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at",
    ),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
    "offline_access": (),
}
SUPPORTED_SCOPES: tuple[str, ...] = tuple(SCOPE_CLAIMS)
STANDARD_CLAIMS: tuple[str, ...] = tuple(dict.fromkeys(c for cs in SCOPE_CLAIMS.values() for c in cs))

SCOPE_DESCRIPTIONS: dict[str, str] = {
    "openid": "Know who you are (a stable identifier for your account)",
    "profile": "See your name and basic profile",
    "email": "See your email address",
    "address": "See your postal address",
    "phone": "See your phone number",
    "offline_access": "Stay connected while you are away",
}


def describe_scope(scope: str) -> str:
    """Plain words for the consent and connected-apps pages; an API's own scopes are shown by name."""
    return SCOPE_DESCRIPTIONS.get(scope, f"Use “{scope}”")


def parse_scope(value: str | None) -> tuple[str, ...]:
    """Split a `scope` value (RFC 6749 §3.3): order is irrelevant, duplicates collapse."""
    if not value:
        return ()
    return tuple(dict.fromkeys(s for s in value.split(" ") if s))


def format_scope(scopes: Iterable[str]) -> str:
    """A canonical order, so that equal grants compare and display equally."""
    order = {s: i for i, s in enumerate(SUPPORTED_SCOPES)}
    return " ".join(sorted(set(scopes), key=lambda s: (order.get(s, len(order)), s)))
