"""Which user claims a client receives: by granted scope (OIDC Core §5.4) and by the `claims`
request parameter (§5.5)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import InvalidRequest
from .models import User
from .scopes import SCOPE_CLAIMS, STANDARD_CLAIMS

__all__ = ["parse_claims_request", "user_claims"]


def parse_claims_request(value: str | None) -> dict[str, Any] | None:
    """Validate the `claims` parameter: a JSON object with optional `userinfo` and `id_token` members."""
    if not value:
        return None
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        raise InvalidRequest("claims is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("claims must be a JSON object")
    result: dict[str, Any] = {}
    for target in ("userinfo", "id_token"):
        section = parsed.get(target)
        if section is None:
            continue
        if not isinstance(section, dict) or not all(v is None or isinstance(v, dict) for v in section.values()):
            raise InvalidRequest(f"claims.{target} must map claim names to null or an object")
        result[target] = section
    return result


def user_claims(user: User, scope: Iterable[str], requested: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`sub`, the claims the scopes release, and any standard claims named in a `claims` request."""
    names: list[str] = []
    for s in scope:
        names.extend(SCOPE_CLAIMS.get(s, ()))
    if requested:
        names.extend(n for n in requested if n in STANDARD_CLAIMS)
    out: dict[str, Any] = {"sub": user.id}
    for name in names:
        if name == "updated_at" and user.updated_at is not None:
            out[name] = int(user.updated_at.timestamp())
        elif name == "preferred_username":
            out[name] = user.claims.get(name, user.username)
        elif name in user.claims and user.claims[name] not in (None, ""):
            out[name] = user.claims[name]
    return out
