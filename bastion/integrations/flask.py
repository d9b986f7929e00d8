"""Flask: log users in with an OpenID Connect provider (`OIDCLogin`), and protect APIs (`require_token`).

    from bastion.integrations.flask import OIDCLogin, current_user, login_required

    app = Flask(__name__)
    app.secret_key = os.environ["FLASK_SECRET_KEY"]
    OIDCLogin(app, issuer="https://id.example.com", client_id="my-app", client_secret="...")

    @app.get("/profile")
    @login_required
    def profile() -> str:
        return current_user()["email"]

Views: `/login?next=/path`, `/callback` (GET; POST for `response_mode="form_post"`) and `/logout`
(POST, or GET for plain links: a forged one can only log the user out), under `url_prefix`, as
endpoints `bastion.login`, `bastion.callback` and `bastion.logout`. Logout ends the session here,
revokes the refresh token, and sends the browser to the provider's logout (RP-Initiated Logout).

Flask's session cookie is signed, not encrypted: whoever holds it can read it. So it carries only
`SESSION_ID` (a random id) and, once logged in, `USER` (the user's claims: the ID token's, merged
with UserInfo). The login in flight (state, nonce, PKCE verifier) and the tokens stay server-side
in a `TransactionStore`; the default `MemoryStore` serves one process, so several processes must
share one (see `bastion.integrations`), or a callback reaching another process finds no login.
A server-side session lives `PERMANENT_SESSION_LIFETIME` at most, and ends at logout.

`response_mode="form_post"` makes the callback a cross-site POST, which carries the session cookie
only if it is `SameSite=None; Secure`; the default (query) mode works with `SameSite=Lax`.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from functools import wraps
from html import escape
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, g, jsonify, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from ..client import (
    AccessDenied,
    AuthorizationRequest,
    CallbackError,
    Client,
    ClientError,
    InvalidResponse,
    NetworkError,
    ProviderError,
    RefreshTokenRevoked,
    TokenSet,
)
from ..resource import InsufficientScope, InvalidToken, TokenValidator, bearer_token, www_authenticate
from . import MemoryStore, TransactionStore

__all__ = ["SESSION_ID", "USER", "OIDCLogin", "current_user", "login_required", "require_token", "safe_next",
           "tokens"]

SESSION_ID = "bastion.sid"
"""Session key of the opaque id naming the server-side login state and tokens."""
USER = "bastion.user"
"""Session key of the logged-in user's claims (ID token claims merged with UserInfo)."""
EXTENSION = "bastion.oidc"
MAX_STATE_LENGTH = 512
_G_USER = "_bastion_user"

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger(__name__)


def safe_next(value: str | None, default: str = "/") -> str:
    """`value` if it is a path on this site, else `default`: `next` must never be an open redirect.

    Browsers read `//evil`, `/\\evil` and `/<tab>/evil` as other hosts, so a slash or backslash after
    the first slash, any backslash, and any control character or space are refused.
    """
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    if any(c == "\\" or c <= " " or c == "\x7f" for c in value):
        return default
    parts = urlsplit(value)
    return default if parts.scheme or parts.netloc else value


def _new_id() -> str:
    return secrets.token_urlsafe(32)


def _load_tokens(record: dict[str, Any] | None) -> TokenSet | None:
    data = record.get("tokens") if record is not None else None
    try:
        return TokenSet.from_dict(data) if isinstance(data, dict) else None
    except ClientError:
        return None


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign-in failed</title></head>
<body><main><h1>Sign-in failed</h1><p>{message}</p><p><a href="{home}">Back to the application</a></p></main></body>
</html>
"""


def _error_page(message: str, status: int) -> Response:
    """A page for the user, never a traceback: the details go to the log."""
    body = _PAGE.format(message=escape(message), home=escape(request.url_root))
    response = Response(body, status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _explain(exc: ClientError) -> str:
    if isinstance(exc, AccessDenied):
        return "Access was denied: the sign-in was cancelled or is not allowed."
    if isinstance(exc, CallbackError):
        return "This sign-in response does not belong to a sign-in started here. Please sign in again."
    if isinstance(exc, NetworkError):
        return "The identity provider could not be reached. Please try again later."
    if isinstance(exc, ProviderError):
        return f"The identity provider refused the sign-in ({exc.error})."
    if isinstance(exc, InvalidResponse):
        return "The identity provider's answer could not be verified."
    return "The sign-in could not be completed."


class OIDCLogin:
    """The OpenID Connect login of a Flask app: authorization code flow with PKCE, state and nonce.

    `redirect_uri` defaults to the callback view's external URL, `post_logout_redirect_uri` to the
    app root's; both must be registered at the provider. `client` replaces the `Client` built from
    issuer, id and secret. `userinfo=False` keeps only the ID token's claims.
    """

    def __init__(self, app: Flask | None = None, *, issuer: str, client_id: str, client_secret: str | None = None,
                 scope: str = "openid profile email", redirect_uri: str | None = None,
                 post_logout_redirect_uri: str | None = None, client: Client | None = None,
                 store: TransactionStore | None = None, url_prefix: str | None = None,
                 response_mode: str | None = None, userinfo: bool = True, transaction_ttl: float = 600,
                 blueprint_name: str = "bastion") -> None:
        self.client = client if client is not None else Client(issuer, client_id, client_secret)
        self._owns_client = client is None
        self.scope, self.redirect_uri, self.post_logout_redirect_uri = scope, redirect_uri, post_logout_redirect_uri
        self.store: TransactionStore = store if store is not None else MemoryStore()
        self.url_prefix, self.response_mode, self.userinfo = url_prefix, response_mode, userinfo
        self.transaction_ttl, self.blueprint_name = transaction_ttl, blueprint_name
        self._refresh_locks = tuple(threading.Lock() for _ in range(64))  # striped: bounded, one per session
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        blueprint = Blueprint(self.blueprint_name, __name__, url_prefix=self.url_prefix)
        blueprint.add_url_rule("/login", "login", self._login, methods=["GET"])
        blueprint.add_url_rule("/callback", "callback", self._callback, methods=["GET", "POST"])
        blueprint.add_url_rule("/logout", "logout", self._logout, methods=["GET", "POST"])
        app.register_blueprint(blueprint)
        app.extensions[EXTENSION] = self

    def close(self) -> None:
        """Close the HTTP connections of the `Client` built here (one passed in stays open)."""
        if self._owns_client:
            self.client.close()

    # --- state --------------------------------------------------------------------------------

    def _key(self, kind: str, *parts: str) -> str:
        """Store keys are hashes: a leaked store listing does not reveal session ids."""
        return f"bastion:{kind}:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()

    def _session_key(self) -> str | None:
        sid = session.get(SESSION_ID)
        return self._key("session", sid) if isinstance(sid, str) else None

    def current_user(self) -> dict[str, Any] | None:
        """The logged-in user's claims, or None; None too once the server-side session has ended."""
        if _G_USER in g:
            return cast(dict[str, Any] | None, g.get(_G_USER))
        claims, key = session.get(USER), self._session_key()
        user = claims if isinstance(claims, dict) and key is not None and self.store.get(key) is not None else None
        if user is None and USER in session:
            session.pop(USER)
        setattr(g, _G_USER, user)
        return user

    def tokens(self, *, refresh: bool = True, leeway: float = 30) -> TokenSet | None:
        """The session's tokens, refreshed first if they expire within `leeway` seconds and a refresh
        token exists. A refused refresh ends the session (None); a network failure raises `ClientError`."""
        key = self._session_key()
        if key is None:
            return None
        current = _load_tokens(self.store.get(key))
        if current is None or not refresh or not current.refresh_token or not current.expires_within(leeway,
                                                                                                     time.time()):
            return current
        with self._refresh_locks[hash(key) % len(self._refresh_locks)]:
            record = self.store.get(key)  # another request may have refreshed meanwhile
            current = _load_tokens(record)
            if record is None or current is None or not current.expires_within(leeway, time.time()):
                return current
            try:
                fresh = self.client.refresh(current)
            except RefreshTokenRevoked:
                latest = _load_tokens(self.store.get(key))
                if latest is not None and latest.access_token != current.access_token:
                    return latest  # another process rotated the refresh token first
                self._end_session()
                return None
            expires_at = float(record.get("expires_at", 0))
            self.store.set(key, {**record, "tokens": fresh.to_dict()}, max(1.0, expires_at - time.time()))
            return fresh

    def _end_session(self) -> None:
        key = self._session_key()
        if key is not None:
            self.store.delete(key)
        session.clear()
        setattr(g, _G_USER, None)

    # --- views --------------------------------------------------------------------------------

    def _login(self) -> ResponseReturnValue:
        next_url = safe_next(request.args.get("next"), request.script_root + "/")
        sid = session.get(SESSION_ID)
        if not isinstance(sid, str):
            sid = session[SESSION_ID] = _new_id()
        redirect_uri = self.redirect_uri or url_for(f"{self.blueprint_name}.callback", _external=True)
        try:
            auth = self.client.start_authorization(self.scope, redirect_uri=redirect_uri,
                                                   response_mode=self.response_mode)
        except ClientError as exc:
            logger.warning("cannot start a sign-in: %s: %s", type(exc).__name__, exc)
            return _error_page(_explain(exc), 502)
        # Keyed by session and state: several tabs may log in at once, and a callback only finds
        # the login this browser started.
        self.store.set(self._key("login", sid, auth.state), {"request": auth.to_dict(), "next": next_url},
                       self.transaction_ttl)
        return redirect(auth.url, 303)

    def _callback(self) -> ResponseReturnValue:
        params = request.form if request.method == "POST" else request.args
        sid, state = session.get(SESSION_ID), params.get("state")
        record = None
        if isinstance(sid, str) and state and len(state) <= MAX_STATE_LENGTH:
            key = self._key("login", sid, state)
            record = self.store.get(key)
            self.store.delete(key)  # single use, whatever happens next
        if record is None:
            return _error_page("This sign-in has expired or was already completed. Please sign in again.", 400)
        try:
            stored = record.get("request")
            if not isinstance(stored, dict):
                raise ClientError("not a stored authorization request")
            auth = AuthorizationRequest.from_dict(stored)
            tokens = self.client.finish_authorization(auth, params.to_dict(flat=False))
            claims = dict(tokens.claims or {})
            if self.userinfo:
                claims.update(self.client.userinfo(tokens))
        except ClientError as exc:
            logger.warning("sign-in failed: %s: %s", type(exc).__name__, exc)
            return _error_page(_explain(exc), 400)
        # A new session id after login, so that an id planted before it is worth nothing (fixation).
        self._end_session()
        new_sid = _new_id()
        ttl = current_app.permanent_session_lifetime.total_seconds()
        self.store.set(self._key("session", new_sid), {"tokens": tokens.to_dict(), "expires_at": time.time() + ttl},
                       ttl)
        session[SESSION_ID], session[USER] = new_sid, claims
        setattr(g, _G_USER, claims)
        return redirect(safe_next(record.get("next"), request.script_root + "/"), 303)

    def _logout(self) -> ResponseReturnValue:
        key = self._session_key()
        tokens = _load_tokens(self.store.get(key)) if key is not None else None
        self._end_session()
        target = self.post_logout_redirect_uri or request.url_root
        if tokens is None or not tokens.id_token:
            return redirect(target, 303)
        try:
            if tokens.refresh_token:  # unreachable once the session is gone: revoke it too
                self.client.revoke(tokens.refresh_token, token_type_hint="refresh_token")
        except ClientError as exc:
            logger.warning("cannot revoke the refresh token at logout: %s: %s", type(exc).__name__, exc)
        try:
            return redirect(self.client.end_session_url(tokens, post_logout_redirect_uri=target), 303)
        except ClientError:  # no end_session_endpoint: logged out here only
            return redirect(target, 303)


def _extension() -> OIDCLogin:
    extension = current_app.extensions.get(EXTENSION)
    if not isinstance(extension, OIDCLogin):
        raise RuntimeError("OIDCLogin is not set up on this app: OIDCLogin(app, ...) or init_app(app)")
    return extension


def current_user() -> dict[str, Any] | None:
    """The logged-in user's claims (ID token claims merged with UserInfo), or None."""
    return _extension().current_user()


def tokens(*, refresh: bool = True) -> TokenSet | None:
    """The logged-in user's tokens, kept server-side; see `OIDCLogin.tokens`."""
    return _extension().tokens(refresh=refresh)


def login_required(view: F) -> F:
    """Send anonymous users to the login, and back to this page (path and query) afterwards."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        extension = _extension()
        if extension.current_user() is None:
            here = request.script_root + (request.full_path if request.query_string else request.path)
            return redirect(url_for(f"{extension.blueprint_name}.login", next=here), 302)
        return current_app.ensure_sync(view)(*args, **kwargs)

    return cast(F, wrapper)


def _refusal(exc: InvalidToken | InsufficientScope, realm: str | None) -> Response:
    response = jsonify(error=exc.error, error_description=str(exc))
    response.status_code = exc.status
    response.headers["WWW-Authenticate"] = www_authenticate(exc, realm)
    return response


def require_token(validator: TokenValidator, scopes: Iterable[str] | str = (), *,
                  realm: str | None = None) -> Callable[[F], F]:
    """Accept only requests with a valid bearer token having all `scopes` (a list, or space-separated).

    Refusals follow RFC 6750: 401 with `WWW-Authenticate` (no `error` when no token was sent), 403
    `insufficient_scope` naming the scopes; the body is `{"error": ..., "error_description": ...}`.
    The view finds the `AccessToken` in `flask.g.access_token`.
    """
    needed = tuple(scopes.split()) if isinstance(scopes, str) else tuple(scopes)

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                token = validator.validate_sync(bearer_token(request.headers.get("Authorization")))
                token.require_scopes(*needed)
            except (InvalidToken, InsufficientScope) as exc:
                return _refusal(exc, realm)
            g.access_token = token
            return current_app.ensure_sync(view)(*args, **kwargs)

        return cast(F, wrapper)

    return decorator
