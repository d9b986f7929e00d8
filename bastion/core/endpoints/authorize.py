"""The authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2) as a chain of named steps.

`check_client` and `check_redirect_uri` run first and raise `InvalidRedirectUri` (a page, never a
redirect); every later step's error is redirected to the now-trusted redirect URI with `state`
and `iss` (RFC 9207). `next_step` decides, as data, whether the user must log in or consent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from ..claims import claim_scopes, parse_claims_request, requested_value
from ..errors import (
    ConsentRequired,
    InvalidRedirectUri,
    InvalidRequest,
    InvalidScope,
    LoginRequired,
    OAuthError,
    RequestNotSupported,
    RequestUriNotSupported,
    UnauthorizedClient,
    UnsupportedResponseType,
)
from ..models import AuthorizationCode, BrowserSession, Client, Consent, Grant, Interaction
from ..pkce import check_code_challenge
from ..provider import Provider
from ..redirect_uris import redirect_uri_matches
from ..resources import requested_resources
from ..scopes import parse_scope
from ..secrets import hash_secret, new_secret
from ..tokens import verify_id_token_hint

__all__ = [
    "AuthorizationRequest",
    "AuthorizationResponse",
    "Step",
    "check_client",
    "check_redirect_uri",
    "error_response",
    "issue_code",
    "next_step",
    "response_mode_of",
    "validate_request",
]

RESPONSE_MODES = ("query", "form_post")
PROMPTS = ("none", "login", "consent", "select_account")
ACR = "urn:bastion:acr:password"

Step = Literal["login", "consent", "done"]


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A fully validated request; stored with a pending interaction as plain JSON."""

    client_id: str
    redirect_uri: str
    response_mode: str
    scope: tuple[str, ...]
    code_challenge: str
    state: str | None = None
    nonce: str | None = None
    prompt: tuple[str, ...] = ()
    max_age: int | None = None
    login_hint: str | None = None
    required_sub: str | None = None
    """The user the client expects (`id_token_hint`, or a `claims` request for a `sub` value)."""
    claims: dict[str, Any] | None = None
    acr_values: str | None = None
    public_client: bool = False
    resources: tuple[str, ...] = ()

    @property
    def consent_scope(self) -> tuple[str, ...]:
        """What the user consents to: the scopes, and those that release individually requested claims."""
        return tuple(dict.fromkeys((*self.scope, *claim_scopes(self.claims))))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthorizationRequest:
        values = dict(data)
        values["scope"] = tuple(values["scope"])
        values["prompt"] = tuple(values["prompt"])
        values["resources"] = tuple(values.get("resources", ()))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class AuthorizationResponse:
    """Where and how the browser goes back to the client (RFC 6749 §4.1.2, OAuth 2.0 Form Post)."""

    redirect_uri: str
    response_mode: str
    params: dict[str, str] = field(default_factory=dict)


async def check_client(provider: Provider, params: Mapping[str, str]) -> Client:
    client_id = params.get("client_id")
    if not client_id:
        raise InvalidRedirectUri("The request has no client_id.")
    client = await provider.store.get_client(client_id)
    if client is None:
        raise InvalidRedirectUri("The application that sent you here is not registered with this provider.",
                                 detail=f"unknown client {client_id[:80]!r}")
    return client


def check_redirect_uri(client: Client, params: Mapping[str, str]) -> str:
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        raise InvalidRedirectUri("The request has no redirect_uri.")
    if not redirect_uri_matches(client, redirect_uri):
        raise InvalidRedirectUri("The redirect URI in the request is not registered for this application.",
                                 detail=f"unregistered redirect_uri for {client.client_id!r}")
    return redirect_uri


def response_mode_of(params: Mapping[str, str]) -> str:
    mode = params.get("response_mode")
    return mode if mode in RESPONSE_MODES else "query"


def error_response(provider: Provider, redirect_uri: str, state: str | None, response_mode: str,
                   error: OAuthError) -> AuthorizationResponse:
    """An error sent back to the client, with `state` and `iss` like any response (RFC 9207 §2)."""
    body = error.to_dict()
    body["iss"] = provider.issuer
    if state is not None:
        body["state"] = state
    return AuthorizationResponse(redirect_uri, response_mode, body)


def _check_scope(client: Client, params: Mapping[str, str]) -> tuple[str, ...]:
    # Unknown scopes are dropped (RFC 6749 §3.3 lets the server issue fewer), as are ones the
    # client may not ask for; nothing usable left is an error.
    scope = tuple(s for s in parse_scope(params.get("scope")) if s in client.scope)
    if not scope:
        raise InvalidScope("No supported scope was requested")
    return scope


def _check_prompt(params: Mapping[str, str]) -> tuple[str, ...]:
    prompt = tuple(dict.fromkeys(p for p in (params.get("prompt") or "").split(" ") if p))
    unknown = [p for p in prompt if p not in PROMPTS]
    if unknown:
        raise InvalidRequest("Unsupported prompt value")
    if "none" in prompt and len(prompt) > 1:
        raise InvalidRequest("prompt=none cannot be combined with other values")
    return prompt


def _check_max_age(params: Mapping[str, str]) -> int | None:
    value = params.get("max_age")
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 10:
        raise InvalidRequest("max_age must be a non-negative integer")
    return int(value)


def validate_request(provider: Provider, client: Client, redirect_uri: str,
                     params: Mapping[str, str]) -> AuthorizationRequest:
    """Every check after the redirect URI is trusted; errors from here are redirected."""
    if "request" in params:
        raise RequestNotSupported("Request objects are not supported")
    if "request_uri" in params:
        raise RequestUriNotSupported("request_uri is not supported")
    response_type = params.get("response_type")
    if not response_type:
        raise InvalidRequest("response_type is required")
    if response_type != "code":
        raise UnsupportedResponseType("Only response_type=code is supported")
    if "response_mode" in params and params["response_mode"] not in RESPONSE_MODES:
        raise InvalidRequest("Unsupported response_mode")
    if "authorization_code" not in client.grant_types:
        raise UnauthorizedClient("This client may not use the authorization code grant")
    scope = _check_scope(client, params)
    code_challenge = check_code_challenge(params.get("code_challenge"), params.get("code_challenge_method"))
    prompt = _check_prompt(params)
    max_age = _check_max_age(params)
    claims = parse_claims_request(params.get("claims"), client.scope)
    required_sub = requested_value(claims, "sub")
    if params.get("id_token_hint"):
        hint = verify_id_token_hint(provider, params["id_token_hint"])
        if hint is None:
            raise InvalidRequest("id_token_hint is not a valid ID token issued by this provider")
        if required_sub is not None and required_sub != hint["sub"]:
            raise InvalidRequest("id_token_hint and the claims request name different users")
        required_sub = hint["sub"]
    if required_sub is not None and not isinstance(required_sub, str):
        raise InvalidRequest("claims: the sub value must be a string")
    return AuthorizationRequest(
        client_id=client.client_id, redirect_uri=redirect_uri, response_mode=response_mode_of(params),
        scope=scope, code_challenge=code_challenge, state=params.get("state"), nonce=params.get("nonce"),
        prompt=prompt, max_age=max_age, login_hint=params.get("login_hint"), required_sub=required_sub,
        claims=claims, acr_values=params.get("acr_values"), public_client=client.is_public,
        resources=requested_resources(params, client.resources),
    )


def _needs_login(request: AuthorizationRequest, session: BrowserSession | None,
                 interaction: Interaction | None, now: datetime) -> bool:
    if session is None:
        return True
    if (interaction is not None and interaction.user_id == session.user_id
            and session.auth_time >= interaction.created_at):
        return False  # this user has just logged in for this very request
    if "login" in request.prompt:
        return True
    if request.max_age is not None and (now - session.auth_time).total_seconds() > request.max_age:
        return True
    return request.required_sub is not None and request.required_sub != session.user_id


def _needs_consent(request: AuthorizationRequest, session: BrowserSession, consent: Consent | None,
                   interaction: Interaction | None) -> bool:
    if interaction is not None and interaction.consent_given and interaction.user_id == session.user_id:
        return False
    # A public client's identity cannot be proven (any loopback port, custom schemes), so another
    # app could pose as it: never hand it a code without the user in the loop (RFC 8252 §8.6).
    if "consent" in request.prompt or request.public_client:
        return True
    return consent is None or not set(request.consent_scope) <= set(consent.scope)


async def next_step(provider: Provider, request: AuthorizationRequest, session: BrowserSession | None,
                    interaction: Interaction | None = None) -> Step:
    """What must happen before a code can be issued; with `prompt=none`, an error instead (§3.1.2.6)."""
    silent = "none" in request.prompt
    if _needs_login(request, session, interaction, provider.now()):
        if silent:
            raise LoginRequired("The user is not logged in")
        return "login"
    assert session is not None
    consent = await provider.store.get_consent(session.user_id, request.client_id)
    if _needs_consent(request, session, consent, interaction):
        if silent:
            raise ConsentRequired("The user has not consented to the requested scopes")
        return "consent"
    return "done"


async def issue_code(provider: Provider, request: AuthorizationRequest,
                     session: BrowserSession) -> AuthorizationResponse:
    """Create the grant and a single-use, short-lived code bound to everything it was issued for."""
    now = provider.now()
    grant = Grant(grant_id=new_secret(16), client_id=request.client_id, user_id=session.user_id,
                  scope=request.scope, created_at=now, auth_time=session.auth_time, acr=ACR, amr=session.amr,
                  claims=request.claims, resources=request.resources,
                  expires_at=now + timedelta(seconds=provider.settings.refresh_token_absolute_ttl))
    code = new_secret(32)
    await provider.store.save_authorization_code(AuthorizationCode(
        code_hash=hash_secret(code), grant_id=grant.grant_id, client_id=request.client_id,
        user_id=session.user_id, redirect_uri=request.redirect_uri, code_challenge=request.code_challenge,
        scope=request.scope, nonce=request.nonce, claims=request.claims, acr=ACR, amr=session.amr,
        session_id=session.session_hash, auth_time=session.auth_time,
        expires_at=now + timedelta(seconds=provider.settings.authorization_code_ttl),
    ), grant)
    params = {"code": code, "iss": provider.issuer}
    if request.state is not None:
        params["state"] = request.state
    return AuthorizationResponse(request.redirect_uri, request.response_mode, params)
