"""`bastion demo`: a demo client and user for trying Bastion locally (used by `make serve`)."""

from __future__ import annotations

import json
import os
import secrets
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from .config import Settings, is_loopback_http
from .core.models import Client, User
from .core.passwords import hash_password
from .core.provider import utcnow
from .core.scopes import SUPPORTED_SCOPES
from .core.secrets import hash_secret, new_secret
from .store.sql import create_store
from .store.sql.migrate import check_schema_current

__all__ = ["DEMO_API", "DEMO_API_SCOPE", "DEMO_CLIENT_ID", "FLASK_EXAMPLE", "demo_client", "seed_demo"]

DEMO_CLIENT_ID = "demo-client"
DEMO_REDIRECT_URI = "http://127.0.0.1:8080/callback"
DEMO_USERNAME = "demo"
FLASK_EXAMPLE = "http://127.0.0.1:5000"
"""examples/flask_app.py: its callback and post-logout URIs are registered for the demo client."""
DEMO_API = "http://127.0.0.1:8001"
"""examples/fastapi_api.py: the resource (RFC 8707) the demo client may get tokens for, and its audience."""
DEMO_API_SCOPE = "hello"


def demo_client(secret: str, now: datetime | None = None) -> Client:
    """The demo client: the README's redirect URI, the examples' URIs, and client credentials for the API."""
    return Client(
        client_id=DEMO_CLIENT_ID, client_name="Demo App",
        redirect_uris=(DEMO_REDIRECT_URI, f"{FLASK_EXAMPLE}/callback"), secret_hash=hash_secret(secret),
        post_logout_redirect_uris=("http://127.0.0.1:8080/", f"{FLASK_EXAMPLE}/"),
        grant_types=("authorization_code", "client_credentials"),
        scope=(*SUPPORTED_SCOPES, DEMO_API_SCOPE), resources=(DEMO_API,), created_at=now)


def _registration(client: Client) -> Client:
    return replace(client, created_at=None, scope=tuple(sorted(client.scope)))


async def seed_demo(settings: Settings) -> int:
    if not is_loopback_http(settings.issuer):
        print("bastion demo seeds local demo credentials and only runs with a loopback issuer")
        return 1
    path = settings.var_dir / "demo.json"
    state: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    store = create_store(settings.database_url)
    try:
        await check_schema_current(store.engine)
        now = utcnow()
        state.setdefault("client_secret", new_secret(32))
        wanted, existing = demo_client(state["client_secret"], now), await store.get_client(DEMO_CLIENT_ID)
        if existing is None or _registration(existing) != _registration(wanted):  # also upgrades older demos
            await store.delete_client(DEMO_CLIENT_ID, now)
            await store.create_client(wanted)
        user = await store.get_user_by_username(DEMO_USERNAME)
        if user is None or "password" not in state:
            if user is not None:
                await store.delete_user(user.id, now)
            state["password"] = "-".join(secrets.token_hex(2) for _ in range(3))
            await store.create_user(User(
                id=str(uuid.uuid4()), username=DEMO_USERNAME, password_hash=hash_password(state["password"]),
                claims={"name": "Demo User", "given_name": "Demo", "family_name": "User",
                        "email": "demo@example.com", "email_verified": True},
                created_at=now, updated_at=now))
    finally:
        await store.close()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)
    print(f"""
  Issuer:         {settings.issuer}
  Discovery:      {settings.issuer}/.well-known/openid-configuration
  Demo client:    client_id={DEMO_CLIENT_ID}
                  client_secret={state["client_secret"]}
                  redirect_uri={DEMO_REDIRECT_URI}
  Demo user:      username={DEMO_USERNAME} password={state["password"]}
  Examples:       examples/flask_app.py on {FLASK_EXAMPLE}, examples/fastapi_api.py on {DEMO_API}
                  (client credentials: scope={DEMO_API_SCOPE} resource={DEMO_API})
""")
    return 0
