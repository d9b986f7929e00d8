"""The ASGI application: the whole route table in one place (node oidc-provider's initialize_app)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from ..core.housekeeping import prune
from ..core.keyring import load_keys, refresh_keys
from ..core.provider import Provider, utcnow
from ..store.sql import create_store
from ..store.sql.migrate import check_schema_current
from . import account, device, endpoints, interaction, logout
from .http import json_response
from .render import error_page, page

__all__ = ["build_provider", "create_app"]

log = logging.getLogger("bastion")


async def build_provider(settings: Settings) -> Provider:
    """Open the store, refuse an outdated schema, and load (or on first start, create) the keys."""
    secret = settings.resolve_key_encryption_secret()
    store = create_store(settings.database_url)
    try:
        await check_schema_current(store.engine)
        keys = await load_keys(store, secret, utcnow())
    except BaseException:
        await store.close()
        raise
    return Provider(settings=settings, store=store, keys=keys, secret=secret)


class AccessLog:
    """Method, path and status only: query strings and bodies may carry codes and tokens."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = logging.getLogger("bastion.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.log.isEnabledFor(logging.INFO):  # BASTION_ACCESS_LOG off
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed_ms = (time.perf_counter() - start) * 1000
            self.log.info("%s %s %d %.1fms", scope["method"], scope["path"], status, elapsed_ms)


HOUSEKEEPING_INTERVAL = 3600.0


async def _background(provider: Provider) -> None:
    """Pick up rotated keys, and hourly delete expired codes, tokens, sessions and interactions."""
    last_cleanup = time.monotonic()
    while True:
        await asyncio.sleep(provider.settings.key_refresh_interval)
        try:
            if await refresh_keys(provider):
                log.info("signing keys reloaded")
            if time.monotonic() - last_cleanup >= HOUSEKEEPING_INTERVAL:
                last_cleanup = time.monotonic()
                log.info("deleted %d expired records", await prune(provider.store, provider.settings, provider.now()))
        except Exception:  # a database hiccup must not stop future runs
            log.warning("background maintenance failed", exc_info=True)


async def home(request: Request) -> Response:
    provider: Provider = request.app.state.provider
    return page("home.html", issuer=provider.issuer)


async def not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith(("/token", "/userinfo", "/.well-known", "/jwks", "/introspect", "/revoke",
                                     "/device_authorization")):
        return json_response({"error": "not_found"}, 404)
    return error_page("There is nothing at this address.", status=404, title="Not found")


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    return json_response({"error": "invalid_request", "error_description": "Method not allowed"}, 405)


async def server_error(request: Request, exc: Exception) -> Response:
    # Logged with the path only: request data may hold credentials.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return json_response({"error": "server_error", "error_description": "An internal error occurred"}, 500)


def create_app(settings: Settings | None = None, provider: Provider | None = None) -> Starlette:
    """The app; with `provider` given (tests), no start-up work is done here."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if provider is not None:
            app.state.provider = provider
            yield
            return
        resolved = settings or Settings()
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        # The logging docs' own optimisations (no format of ours shows these), for a record per request
        # (the access log): finding the caller walks the whole middleware stack of every request.
        logging._srcfile = None
        logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
        logging.getLogger("bastion").setLevel(resolved.log_level.upper())
        logging.getLogger("bastion.access").setLevel(logging.INFO if resolved.access_log else logging.WARNING)
        built = await build_provider(resolved)
        app.state.provider = built
        # What is loaded by now (modules, settings, keys) lives as long as the process: out of the
        # cycle collector's reach, a full collection walks only what came after. Unfrozen, each walked
        # it all, stalling every request in flight for ~50 ms, several times a second under load
        # (requests in flight across loop turns reach the old generation and make full collections due).
        gc.collect()
        gc.freeze()
        refresher = asyncio.create_task(_background(built))
        try:
            yield
        finally:
            refresher.cancel()
            await built.store.close()

    routes = [
        # The busiest first: the router tries routes in order.
        Route("/token", endpoints.token, methods=["POST"]),
        Route("/userinfo", endpoints.userinfo, methods=["GET", "POST"]),
        Route("/introspect", endpoints.introspection, methods=["POST"]),
        Route("/authorize", interaction.authorize, methods=["GET", "POST"]),
        Route("/.well-known/openid-configuration", endpoints.discovery, methods=["GET"]),
        Route("/jwks", endpoints.jwks, methods=["GET"]),
        Route("/", home, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", endpoints.discovery, methods=["GET"]),
        Route("/interaction/{uid}", interaction.interaction_show, methods=["GET"]),
        Route("/interaction/{uid}/login", interaction.interaction_login, methods=["POST"]),
        Route("/interaction/{uid}/consent", interaction.interaction_consent, methods=["POST"]),
        Route("/device_authorization", device.device_authorization_endpoint, methods=["POST"]),
        Route("/device", device.device_page, methods=["GET"]),
        Route("/device", device.device_submit, methods=["POST"]),
        Route("/device/done", device.device_done, methods=["GET"]),
        Route("/revoke", endpoints.revocation, methods=["POST"]),
        Route("/logout", logout.logout, methods=["GET", "POST"]),
        Route("/logout/confirm", logout.logout_confirm, methods=["POST"]),
        Route("/account/apps", account.apps, methods=["GET"]),
        Route("/account/login", account.login, methods=["POST"]),
        Route("/account/apps/revoke", account.revoke_app, methods=["POST"]),
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
    ]
    # CORS preflight for the endpoints browsers may call cross-origin; never /authorize (RFC 9700 §2.6).
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/jwks",
                 "/token", "/userinfo", "/revoke", "/device_authorization"):
        routes.append(Route(path, endpoints.preflight, methods=["OPTIONS"], name=f"preflight:{path}"))
    app = Starlette(
        routes=routes,
        middleware=[Middleware(AccessLog)],
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: method_not_allowed, 500: server_error, Exception: server_error},
    )
    if provider is not None:
        app.state.provider = provider
    return app
