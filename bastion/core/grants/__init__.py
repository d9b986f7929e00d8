"""One module per grant type, each exporting GRANT_TYPE, PARAMETERS and `handle`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..models import Client
from ..provider import Provider
from . import authorization_code, client_credentials, device_code, refresh_token

__all__ = ["GRANTS", "GrantHandler"]

GrantHandler = Callable[[Provider, Client, Mapping[str, str]], Awaitable[dict[str, Any]]]

GRANTS: dict[str, tuple[frozenset[str], GrantHandler]] = {
    authorization_code.GRANT_TYPE: (authorization_code.PARAMETERS, authorization_code.handle),
    refresh_token.GRANT_TYPE: (refresh_token.PARAMETERS, refresh_token.handle),
    client_credentials.GRANT_TYPE: (client_credentials.PARAMETERS, client_credentials.handle),
    device_code.GRANT_TYPE: (device_code.PARAMETERS, device_code.handle),
}
