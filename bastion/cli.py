"""`bastion`: the operator's command line. `make serve` seeds through these same functions."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from . import device_login
from .config import ConfigError, Settings
from .core.housekeeping import prune, revoke_authorizations
from .core.keyring import load_keys, rotate_keys
from .core.models import Client, User
from .core.passwords import hash_password
from .core.provider import utcnow
from .core.redirect_uris import check_registered_uri
from .core.scopes import SUPPORTED_SCOPES, format_scope, parse_scope
from .core.secrets import hash_secret, new_secret
from .store.base import DuplicateError
from .store.sql import SQLStore, create_store
from .store.sql.migrate import SchemaOutdated, check_schema_current, upgrade

__all__ = ["main"]

GRANT_TYPES = (
    "authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code",
)
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


class UsageError(Exception):
    """A command-line mistake; printed without a traceback."""


def _print(obj: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=2, default=str))
    else:
        for key, value in obj.items():
            print(f"{key:28} {' '.join(value) if isinstance(value, list | tuple) else value}")


async def _with_store(settings: Settings, fn: Callable[[SQLStore], Awaitable[int]]) -> int:
    store = create_store(settings.database_url)
    try:
        await check_schema_current(store.engine)
        return await fn(store)
    finally:
        await store.close()


def _client_dict(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id, "client_name": client.client_name,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "application_type": client.application_type, "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "grant_types": list(client.grant_types), "scope": format_scope(client.scope),
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "resources": list(client.resources), "access_token_format": client.access_token_format,
        "permissions": list(client.permissions), "refresh_token_policy": client.refresh_token_policy,
    }


def build_client(args: argparse.Namespace) -> tuple[Client, str | None]:
    """A validated client from `clients create` options, and the secret to show once."""
    if args.public and args.secret:
        raise UsageError("--public and --secret exclude each other")
    method = args.token_endpoint_auth_method or ("none" if args.public else "client_secret_basic")
    if (method == "none") != bool(args.public or method == "none"):
        raise UsageError("a public client uses --token-endpoint-auth-method none")
    secret = None if method == "none" else (args.secret or new_secret(32))
    if secret is not None and len(secret) < 32:
        # Secrets are stored as an unsalted SHA-256, which is right only for high-entropy values.
        raise UsageError("a client secret must be at least 32 random characters (omit --secret to generate one)")
    app_type = args.application_type or ("native" if method == "none" else "web")
    for uri in [*args.redirect_uri, *args.post_logout_redirect_uri]:
        problem = check_registered_uri(uri, native=app_type == "native")
        if problem:
            raise UsageError(f"redirect URI {uri!r} {problem}")
    grant_types = tuple(dict.fromkeys(args.grant_type or ("authorization_code",)))
    if "authorization_code" in grant_types and not args.redirect_uri:
        raise UsageError("the authorization_code grant needs at least one --redirect-uri")
    if "client_credentials" in grant_types and method == "none":
        raise UsageError("client_credentials needs a confidential client")
    for resource in args.resource:
        try:
            parts = urlsplit(resource)
        except ValueError:
            parts = urlsplit("")
        if not parts.scheme or not parts.netloc or "#" in resource:
            raise UsageError(f"resource {resource!r} must be an absolute URI without a fragment")
    scope = parse_scope(args.scope) if args.scope else SUPPORTED_SCOPES
    client = Client(
        client_id=args.client_id, client_name=args.name or args.client_id,
        redirect_uris=tuple(args.redirect_uri), token_endpoint_auth_method=method,
        secret_hash=hash_secret(secret) if secret else None,
        post_logout_redirect_uris=tuple(args.post_logout_redirect_uri), grant_types=grant_types, scope=scope,
        application_type=app_type, id_token_signed_response_alg=args.id_token_alg, created_at=utcnow(),
        resources=tuple(args.resource), access_token_format=args.access_token_format,
        permissions=tuple(dict.fromkeys(args.permission)), refresh_token_policy=args.refresh_token_policy,
    )
    return client, (secret if not args.secret else None)


async def clients_create(settings: Settings, args: argparse.Namespace) -> int:
    client, generated = build_client(args)

    async def run(store: SQLStore) -> int:
        await store.create_client(client)
        out = _client_dict(client)
        if generated:
            out["client_secret"] = generated  # shown once; only its hash is stored
        _print(out, args.json)
        if generated and not args.json:
            print("\nStore the client_secret now: it is not kept and cannot be shown again.", file=sys.stderr)
        return 0

    return await _with_store(settings, run)


async def clients_list(settings: Settings, args: argparse.Namespace) -> int:
    async def run(store: SQLStore) -> int:
        clients = [_client_dict(c) for c in await store.list_clients()]
        if args.json:
            print(json.dumps(clients, indent=2))
        for c in [] if args.json else clients:
            print(f"{c['client_id']:30} {c['token_endpoint_auth_method']:22} {c['client_name']}")
        return 0

    return await _with_store(settings, run)


async def clients_show(settings: Settings, args: argparse.Namespace) -> int:
    async def run(store: SQLStore) -> int:
        client = await store.get_client(args.client_id)
        if client is None:
            raise UsageError(f"no client {args.client_id!r}")
        _print(_client_dict(client), args.json)
        return 0

    return await _with_store(settings, run)


async def clients_delete(settings: Settings, args: argparse.Namespace) -> int:
    async def run(store: SQLStore) -> int:
        if not await store.delete_client(args.client_id, utcnow()):
            raise UsageError(f"no client {args.client_id!r}")
        print(f"deleted client {args.client_id} and revoked its grants")
        return 0

    return await _with_store(settings, run)


async def users_create(settings: Settings, args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else args.password
    if not password:
        raise UsageError("give --password or --password-stdin")
    claims: dict[str, Any] = {}
    for name in ("email", "name", "given_name", "family_name", "phone_number"):
        if getattr(args, name):
            claims[name] = getattr(args, name)
    if args.email:
        claims["email_verified"] = True
    now = utcnow()
    user = User(id=str(uuid.uuid4()), username=args.username, password_hash=hash_password(password),
                claims=claims, created_at=now, updated_at=now)

    async def run(store: SQLStore) -> int:
        await store.create_user(user)
        print(f"created user {user.username} (sub {user.id})")
        return 0

    return await _with_store(settings, run)


async def users_list(settings: Settings, args: argparse.Namespace) -> int:
    async def run(store: SQLStore) -> int:
        for user in await store.list_users():
            print(f"{user.username:30} {user.id}  {user.claims.get('email', '')}")
        return 0

    return await _with_store(settings, run)


async def users_delete(settings: Settings, args: argparse.Namespace) -> int:
    async def run(store: SQLStore) -> int:
        user = await store.get_user_by_username(args.username)
        if user is None or not await store.delete_user(user.id, utcnow()):
            raise UsageError(f"no user {args.username!r}")
        print(f"deleted user {args.username}, ended their sessions and revoked their grants")
        return 0

    return await _with_store(settings, run)


async def keys_list(settings: Settings, args: argparse.Namespace) -> int:
    secret = settings.resolve_key_encryption_secret()

    async def run(store: SQLStore) -> int:
        keys = await load_keys(store, secret, utcnow(), generate=False)
        signing = {keys.signing_key(a).kid for a in keys.algorithms}
        for key in sorted(keys.keys, key=lambda k: (k.alg, k.created_at)):
            state = "signing" if key.kid in signing else f"retiring at {key.retire_at:%Y-%m-%d %H:%M}Z"
            print(f"{key.kid:18} {key.alg:6} created {key.created_at:%Y-%m-%d %H:%M}Z  {state}")
        return 0

    return await _with_store(settings, run)


async def keys_rotate(settings: Settings, args: argparse.Namespace) -> int:
    secret = settings.resolve_key_encryption_secret()

    async def run(store: SQLStore) -> int:
        algs = tuple(args.alg) if args.alg else ("RS256", "ES256", "EdDSA")
        kids = await rotate_keys(store, secret, settings, utcnow(), algs)
        print(f"new signing keys: {', '.join(kids)}; previous keys stay in the JWKS until their tokens expire.")
        interval = settings.key_refresh_interval
        print(f"Running servers switch to them within BASTION_KEY_REFRESH_INTERVAL ({interval} s).")
        return 0

    return await _with_store(settings, run)


async def tokens_revoke(settings: Settings, args: argparse.Namespace) -> int:
    async def run(store: SQLStore) -> int:
        user = await store.get_user_by_username(args.user)
        if user is None:
            raise UsageError(f"no user {args.user!r}")
        if args.client is not None and await store.get_client(args.client) is None:
            raise UsageError(f"no client {args.client!r}")
        now = utcnow()
        count = await revoke_authorizations(store, user.id, args.client, now, "grants_revoked_by_operator")
        print(f"revoked {count} grant(s) of {args.user}" + (f" to {args.client}" if args.client else ""))
        return 0

    return await _with_store(settings, run)


async def db_prune(settings: Settings, args: argparse.Namespace) -> int:
    async def run(store: SQLStore) -> int:
        print(f"deleted {await prune(store, settings, utcnow())} expired record(s)")
        return 0

    return await _with_store(settings, run)


async def db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    await upgrade(settings.database_url)
    print("database schema is up to date")
    return 0


async def demo(settings: Settings, args: argparse.Namespace) -> int:
    """Idempotent local seed: a demo client and user whose credentials live in var/demo.json."""
    from .demo import seed_demo

    return await seed_demo(settings)


def _prepare_serve(settings: Settings) -> None:
    async def run() -> None:
        secret = settings.resolve_key_encryption_secret()
        store = create_store(settings.database_url)
        try:
            await check_schema_current(store.engine)
            await load_keys(store, secret, utcnow())  # first start: generate keys before workers fork
        finally:
            await store.close()

    asyncio.run(run())


def serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    _prepare_serve(settings)
    print(f"Bastion serving issuer {settings.issuer} on http://{args.host}:{args.port}", flush=True)
    uvicorn.run("bastion.web.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, access_log=False, log_level=settings.log_level, proxy_headers=False)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bastion", description="Bastion OpenID Provider")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the provider")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=serve)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(func=db_upgrade)
    db.add_parser("prune", help="delete expired codes, tokens, sessions and old grants").set_defaults(func=db_prune)

    sub.add_parser("demo", help="seed a demo client and user (local use)").set_defaults(func=demo)

    p = sub.add_parser("device-login", help="log in on this terminal with the device flow (RFC 8628)")
    device_login.add_arguments(p)
    p.set_defaults(func=device_login.command)

    clients = sub.add_parser("clients", help="registered clients").add_subparsers(dest="sub", required=True)
    c = clients.add_parser("create", help="register a client")
    c.add_argument("--client-id", required=True)
    c.add_argument("--secret", help="use this secret (default: generate 256 random bits)")
    c.add_argument("--public", action="store_true", help="a public client (no secret, PKCE only)")
    c.add_argument("--redirect-uri", action="append", default=[])
    c.add_argument("--post-logout-redirect-uri", action="append", default=[])
    c.add_argument("--grant-type", action="append", choices=GRANT_TYPES)
    c.add_argument("--scope", help='allowed scopes, e.g. "openid profile email"')
    c.add_argument("--name")
    c.add_argument("--token-endpoint-auth-method", choices=AUTH_METHODS)
    c.add_argument("--application-type", choices=("web", "native"))
    c.add_argument("--id-token-alg", default="RS256", choices=("RS256", "ES256", "EdDSA"))
    c.add_argument("--resource", action="append", default=[], help="a resource indicator it may ask for (RFC 8707)")
    c.add_argument("--access-token-format", default="jwt", choices=("jwt", "opaque"))
    c.add_argument("--permission", action="append", default=[], choices=("introspect",),
                   help="introspect: may introspect tokens whose audience is one of its --resource values")
    c.add_argument("--refresh-token-policy", default="offline_access", choices=("offline_access", "always"))
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=clients_create)
    c = clients.add_parser("list")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=clients_list)
    c = clients.add_parser("show")
    c.add_argument("client_id")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=clients_show)
    c = clients.add_parser("delete")
    c.add_argument("client_id")
    c.set_defaults(func=clients_delete)

    users = sub.add_parser("users", help="end-users").add_subparsers(dest="sub", required=True)
    u = users.add_parser("create")
    u.add_argument("--username", required=True)
    group = u.add_mutually_exclusive_group(required=True)
    group.add_argument("--password")
    group.add_argument("--password-stdin", action="store_true")
    u.add_argument("--email")
    u.add_argument("--name")
    u.add_argument("--given-name")
    u.add_argument("--family-name")
    u.add_argument("--phone-number")
    u.set_defaults(func=users_create)
    users.add_parser("list").set_defaults(func=users_list)
    u = users.add_parser("delete")
    u.add_argument("username")
    u.set_defaults(func=users_delete)

    tokens = sub.add_parser("tokens", help="issued tokens").add_subparsers(dest="sub", required=True)
    r = tokens.add_parser("revoke", help="revoke everything a user granted (optionally to one client)")
    r.add_argument("--user", required=True, metavar="USERNAME")
    r.add_argument("--client", metavar="CLIENT_ID")
    r.set_defaults(func=tokens_revoke)

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(dest="sub", required=True)
    keys.add_parser("list").set_defaults(func=keys_list)
    k = keys.add_parser("rotate")
    k.add_argument("--alg", action="append", choices=("RS256", "ES256", "EdDSA"))
    k.set_defaults(func=keys_rotate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings()
        result = args.func(settings, args)
        return int(asyncio.run(result) if asyncio.iscoroutine(result) else result)
    except (ConfigError, SchemaOutdated, UsageError, DuplicateError) as exc:
        print(f"bastion: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(f"bastion: invalid configuration: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
