"""Which user claims a client receives: by granted scope (OIDC Core §5.4) and by the `claims`
request parameter (§5.5)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import InvalidRequest
from .models import User
from .scopes import SCOPE_CLAIMS, STANDARD_CLAIMS

__all__ = ["CLAIM_SCOPE", "claim_scopes", "parse_claims_request", "requested_value", "user_claims"]


CLAIM_SCOPE: dict[str, str] = {c: s for s, cs in SCOPE_CLAIMS.items() for c in cs}
_MAX_VALUES = 20


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and not (isinstance(value, str) and len(value) > 1024)


def _claim_request(spec: Any) -> dict[str, Any]:
    """Keep only what §5.5.1 defines (`essential`, `value`, `values`), as plain scalars."""
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise InvalidRequest("Each requested claim must be null or an object")
    out: dict[str, Any] = {}
    if isinstance(spec.get("essential"), bool):
        out["essential"] = spec["essential"]
    if "value" in spec and _is_scalar(spec["value"]):
        out["value"] = spec["value"]
    values = spec.get("values")
    if isinstance(values, list) and all(_is_scalar(v) for v in values[:_MAX_VALUES]):
        out["values"] = values[:_MAX_VALUES]
    return out


def parse_claims_request(value: str | None, allowed_scopes: Iterable[str]) -> dict[str, Any] | None:
    """Validate the `claims` parameter and keep only claims the client may ever receive.

    A requested claim counts as a request for the scope that releases it, so it is consented to
    like that scope (`claim_scopes`) and can never exceed what the client is registered for.
    """
    if not value:
        return None
    try:
        parsed = json.loads(value, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise InvalidRequest("claims is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("claims must be a JSON object")
    allowed = set(allowed_scopes) | {"openid"}
    result: dict[str, Any] = {}
    for target in ("userinfo", "id_token"):
        section = parsed.get(target)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise InvalidRequest(f"claims.{target} must be an object")
        result[target] = {name: _claim_request(spec) for name, spec in section.items()
                          if CLAIM_SCOPE.get(name) in allowed}
    return result


def claim_scopes(claims: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The scopes whose consent covers the claims a `claims` request names."""
    names = [n for section in (claims or {}).values() for n in section]
    return tuple(dict.fromkeys(CLAIM_SCOPE[n] for n in names if CLAIM_SCOPE.get(n, "openid") != "openid"))


def requested_value(claims: Mapping[str, Any] | None, name: str) -> Any:
    """The `value` a `claims` request demands for `name` in either section, if any."""
    for section in (claims or {}).values():
        spec = section.get(name) or {}
        if "value" in spec:
            return spec["value"]
    return None


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
