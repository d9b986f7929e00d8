"""The relying party's protocol, written once as sans-I/O flows (see `bastion.sansio`).

Every method here that talks to the provider is a generator: it yields the `httpx.Request`s it needs
and receives their responses, so `Client` (sync) and `AsyncClient` only run them. State kept between
calls (metadata, JWKS) is plain attributes, fetched on first use.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx

from ..core import jose
from ..core.pkce import s256
from ..core.secrets import new_secret
from ..sansio import Flow, Sleep, request
from .auth import ClientAuthentication
from .errors import (
    CallbackError,
    ClientError,
    DiscoveryError,
    ExpiredToken,
    InvalidClient,
    InvalidResponse,
    InvalidToken,
    IssuerMismatch,
    NetworkError,
    ProviderError,
    RefreshTokenRevoked,
    StateMismatch,
    SubjectMismatch,
    Timeout,
    printable,
    provider_error,
)
from .id_token import Expectations, UnknownKey, validate_id_token
from .metadata import ProviderMetadata, check_url, discovery_urls
from .models import AuthorizationRequest, DeviceAuthorization, TokenSet

__all__ = ["DEFAULT_ALGORITHMS", "DEVICE_CODE_GRANT", "Protocol", "failure"]

H = TypeVar("H", httpx.Client, httpx.AsyncClient)

DEFAULT_ALGORITHMS = ("RS256", "ES256", "EdDSA")
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL = 5  # RFC 8628 §3.2: when the provider names none
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5
JWKS_REFETCH_INTERVAL = 10.0
RESERVED = frozenset({"response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
                      "code_challenge_method"})
_BEARER_ERROR = re.compile(r'error="([^"\\]*)"')

Form = dict[str, str | list[str]]
Resource = str | Sequence[str] | None


def failure(exc: httpx.HTTPError) -> NetworkError:
    """A transport failure as the client's exception (thrown into the running flow by the drivers)."""
    if isinstance(exc, httpx.TimeoutException):
        return Timeout("the provider did not answer in time")
    return NetworkError(f"cannot reach the provider: {type(exc).__name__} {printable(str(exc))}".strip())


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError
        return None
    return body if isinstance(body, dict) else None


def _answer(response: httpx.Response | None, what: str,
            by_code: dict[str, type[ProviderError]] | None = None) -> dict[str, Any]:
    """The JSON object of a successful answer; the provider's OAuth error as its typed exception."""
    if response is None:
        raise InvalidResponse(f"no answer from the {what}")
    body = _json_object(response)
    if response.status_code == 200 and body is not None:
        return body
    challenge = _BEARER_ERROR.search(response.headers.get("www-authenticate", ""))
    if response.status_code in (401, 403) and (body is None or "error" not in body) and challenge is not None:
        body = {"error": challenge.group(1)}  # RFC 6750 §3: the error is in the challenge, not the body
    elif response.status_code == 401 and (body is None or "error" not in body):
        if what == "UserInfo endpoint":
            raise InvalidToken("invalid_token", "the access token was refused", status=401)
        else:  # the endpoints we authenticate to as a client (RFC 6749 §5.2)
            raise InvalidClient("invalid_client", "the client could not authenticate", status=401)
    raise provider_error(body, response.status_code, what, by_code)


def _resources(resource: Resource) -> list[str]:
    return [resource] if isinstance(resource, str) else list(resource or ())


def _positive_int(value: Any) -> int | None:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:  # some send "3600"
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _callback_params(callback: str | Mapping[str, Any]) -> dict[str, str]:
    """The authorization response's parameters, from the callback URL (query) or a form_post body.
    A parameter given twice is refused (RFC 6749 §3.1): which copy would we trust?"""
    if isinstance(callback, str):
        parts = urlsplit(callback)
        items: dict[str, list[str]] = parse_qs(parts.query or parts.fragment, keep_blank_values=True)
    else:
        items = {k: v if isinstance(v, list) else [v] for k, v in callback.items()}
    params: dict[str, str] = {}
    for name, values in items.items():
        if len(values) != 1 or not isinstance(values[0], str):
            raise CallbackError(f"the authorization response repeats or garbles {printable(str(name), 40)!r}")
        params[str(name)] = values[0]
    return params


class Protocol(Generic[H]):
    """Configuration and the flows of one client at one provider. Use `Client` or `AsyncClient`."""

    def __init__(self, issuer: str, client_id: str, client_secret: str | None = None, *,
                 redirect_uri: str | None = None, auth_method: str | None = None,
                 private_key: jose.PrivateKey | None = None, key_id: str | None = None,
                 algorithms: Iterable[str] = DEFAULT_ALGORITHMS, leeway: float = 60, jwks_ttl: float = 600,
                 http: H | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Any] | None = None) -> None:
        discovery_urls(issuer)  # refuses an issuer that is not https (or loopback http) early
        self.issuer, self.client_id, self.redirect_uri = issuer, client_id, redirect_uri
        self.algorithms = tuple(a for a in algorithms if a in jose.ALGORITHMS)
        if not self.algorithms:
            raise ValueError("no supported ID token algorithm (RS256, ES256, EdDSA)")
        self.leeway, self.jwks_ttl = leeway, jwks_ttl
        self.authentication = ClientAuthentication.choose(client_id, auth_method, client_secret, private_key, key_id)
        self._http: H | None = http
        self._owned = False  # whether the driver created `_http` (and so closes it)
        self._locks: dict[tuple[str, tuple[str, ...]], Any] = {}  # client_credentials: one lock per cache key
        self._clock = clock
        self._sleep = sleep  # None: time.sleep or asyncio.sleep, by driver; replaceable with `clock` in tests
        self._metadata: ProviderMetadata | None = None
        self._keys: dict[str, tuple[str, jose.PublicKey]] = {}
        self._keys_fetched_at = float("-inf")
        self._token_cache: dict[tuple[str, tuple[str, ...]], tuple[TokenSet, float]] = {}

    # --- discovery and keys -------------------------------------------------------------------

    def _discover(self) -> Flow[ProviderMetadata]:
        """The provider's metadata, fetched once (Discovery §4; RFC 8414 as a fallback)."""
        if self._metadata is None:
            oidc, oauth = discovery_urls(self.issuer)
            headers = {"Accept": "application/json"}
            response = yield request("GET", oidc, headers=headers)
            if response is not None and response.status_code == 404:
                response = yield request("GET", oauth, headers=headers)
            if response is None or response.status_code != 200:
                status = response.status_code if response is not None else "none"
                raise DiscoveryError(f"no metadata for issuer {self.issuer!r} (HTTP {status})")
            self._metadata = ProviderMetadata.parse(_json_object(response), self.issuer)
        return self._metadata

    def _jwks(self, refresh: bool) -> Flow[dict[str, tuple[str, jose.PublicKey]]]:
        now = self._clock()
        if refresh or not self._keys or now - self._keys_fetched_at > self.jwks_ttl:
            jwks_uri = (yield from self._discover()).endpoint("jwks_uri")
            response = yield request("GET", jwks_uri)
            # Counted from the answer, not the question: a login that meets a new key while another
            # fetch is in flight fetches too, rather than being turned away by the rate limit.
            self._keys_fetched_at = self._clock()
            self._keys = jose.keys_from_jwks(_answer(response, "JWKS endpoint"))
        return self._keys

    def _id_token_claims(self, id_token: Any, **expected: Any) -> Flow[dict[str, Any]]:
        """Validate an ID token; an unknown `kid` means the provider rotated keys: refetch once."""
        meta = yield from self._discover()
        supported = meta.values("id_token_signing_alg_values_supported")
        algorithms = [a for a in self.algorithms if supported is None or a in supported]
        keys = yield from self._jwks(refresh=False)
        expect = Expectations(meta.issuer, self.client_id, algorithms, self._clock(), self.leeway, **expected)
        try:
            return validate_id_token(id_token, keys, expect)
        except UnknownKey:
            if self._clock() - self._keys_fetched_at < JWKS_REFETCH_INTERVAL:
                if self._keys is keys:
                    raise
                return validate_id_token(id_token, self._keys, expect)  # another login just fetched them
        keys = yield from self._jwks(refresh=True)
        return validate_id_token(id_token, keys, expect)

    # --- the token endpoint -------------------------------------------------------------------

    def _send(self, endpoint: str, form: Form) -> Flow[httpx.Response | None]:
        """POST an authenticated form to one of the provider's endpoints."""
        meta = yield from self._discover()
        url = meta.endpoint(endpoint)
        headers = {"Accept": "application/json"}
        self.authentication.apply(form, headers, meta.issuer, self._clock())
        return (yield request("POST", url, data=form, headers=headers))

    def _post(self, endpoint: str, form: Form, what: str,
              by_code: dict[str, type[ProviderError]] | None = None) -> Flow[dict[str, Any]]:
        """`_send`, and its JSON answer."""
        return _answer((yield from self._send(endpoint, form)), what, by_code)

    def _token_set(self, body: dict[str, Any], previous: TokenSet | None = None, require_id_token: bool = False,
                   **expected: Any) -> Flow[TokenSet]:
        """RFC 6749 §5.1 checked field by field, and the ID token validated, if one came."""
        access_token, token_type = body.get("access_token"), body.get("token_type")
        if not isinstance(access_token, str) or not access_token or not isinstance(token_type, str):
            raise InvalidResponse("the token response lacks access_token or token_type")
        if token_type.lower() != "bearer":
            raise InvalidResponse(f"unsupported token_type {printable(token_type, 40)!r}")
        refresh_token, scope, id_token = body.get("refresh_token"), body.get("scope"), body.get("id_token")
        if refresh_token is not None and not isinstance(refresh_token, str):
            raise InvalidResponse("the token response has a malformed refresh_token")
        claims = previous.claims if previous is not None else None
        if id_token is not None:
            claims = yield from self._id_token_claims(id_token, access_token=access_token, **expected)
        elif require_id_token:
            raise InvalidResponse("the provider sent no ID token for an openid request")
        expires_in = _positive_int(body.get("expires_in"))
        return TokenSet(
            access_token=access_token,
            token_type=token_type,
            expires_at=self._clock() + expires_in if expires_in is not None else None,
            refresh_token=refresh_token or (previous.refresh_token if previous is not None else None),
            id_token=id_token if id_token is not None else (previous.id_token if previous is not None else None),
            claims=claims,
            scope=scope if isinstance(scope, str) else (previous.scope if previous is not None else None),
            raw=body,
        )

    # --- authorization code flow --------------------------------------------------------------

    def _start_authorization(self, scope: str, redirect_uri: str | None, prompt: str | None, max_age: int | None,
                             login_hint: str | None, resource: Resource, acr_values: str | None,
                             response_mode: str | None, extra: Mapping[str, str] | None
                             ) -> Flow[AuthorizationRequest]:
        meta = yield from self._discover()
        endpoint = meta.endpoint("authorization_endpoint")
        methods = meta.values("code_challenge_methods_supported")
        if methods is not None and "S256" not in methods:
            raise DiscoveryError("the provider does not support PKCE with S256")
        redirect_uri = redirect_uri or self.redirect_uri
        if not redirect_uri:
            raise ClientError("a redirect_uri is needed, in the Client or in start_authorization()")
        if extra and RESERVED & set(extra):
            raise ClientError(f"extra parameters may not set {', '.join(sorted(RESERVED & set(extra)))}")
        state, verifier = new_secret(), new_secret()  # 256 bits each; the verifier is 43 characters
        nonce = new_secret() if "openid" in scope.split() else None
        params = [("response_type", "code"), ("client_id", self.client_id), ("redirect_uri", redirect_uri),
                  ("scope", scope), ("state", state), ("code_challenge", s256(verifier)),
                  ("code_challenge_method", "S256")]
        optional = {"nonce": nonce, "prompt": prompt, "max_age": None if max_age is None else str(max_age),
                    "login_hint": login_hint, "acr_values": acr_values, "response_mode": response_mode}
        params += [(k, v) for k, v in optional.items() if v is not None]
        params += [("resource", r) for r in _resources(resource)]
        params += list((extra or {}).items())
        separator = "&" if urlsplit(endpoint).query else "?"
        url = endpoint + separator + urlencode(params, quote_via=quote)
        return AuthorizationRequest(url, state, nonce, verifier, redirect_uri, max_age, scope,
                                    tuple(_resources(resource)))

    def _finish_authorization(self, auth: AuthorizationRequest,
                              callback: str | Mapping[str, Any]) -> Flow[TokenSet]:
        params = _callback_params(callback)
        state = params.get("state")
        if state is None or not hmac.compare_digest(state.encode(), auth.state.encode()):
            raise StateMismatch("the callback's state is not the one this login sent")
        meta = yield from self._discover()
        iss = params.get("iss")
        if (iss is not None or meta.sends_iss) and iss != meta.issuer:
            raise IssuerMismatch("the authorization response comes from another issuer (RFC 9207)")
        if "error" in params:
            raise provider_error(params, None, "authorization server")
        code = params.get("code")
        if not code:
            raise CallbackError("the authorization response carries no code")
        form: Form = {"grant_type": "authorization_code", "code": code, "redirect_uri": auth.redirect_uri,
                      "code_verifier": auth.code_verifier}
        if auth.resource:
            form["resource"] = list(auth.resource)
        body = yield from self._post("token_endpoint", form, "token endpoint")
        return (yield from self._token_set(body, require_id_token=auth.nonce is not None, nonce=auth.nonce,
                                           max_age=auth.max_age))

    # --- tokens -------------------------------------------------------------------------------

    def _refresh(self, token: str | TokenSet, scope: str | None, resource: Resource) -> Flow[TokenSet]:
        previous = token if isinstance(token, TokenSet) else None
        refresh_token = token.refresh_token if isinstance(token, TokenSet) else token
        if not refresh_token:
            raise ClientError("there is no refresh token to use")
        form: Form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if scope is not None:
            form["scope"] = scope
        if resource:
            form["resource"] = _resources(resource)
        body = yield from self._post("token_endpoint", form, "token endpoint", {"invalid_grant": RefreshTokenRevoked})
        # OIDC Core §12.2: a new ID token must be about the same user.
        subject = previous.subject if previous is not None else None
        return (yield from self._token_set(body, previous, subject=subject))

    def _client_credentials(self, scope: str | None, resource: Resource) -> Flow[TokenSet]:
        form: Form = {"grant_type": "client_credentials"}
        if scope is not None:
            form["scope"] = scope
        if resource:
            form["resource"] = _resources(resource)
        return (yield from self._token_set((yield from self._post("token_endpoint", form, "token endpoint"))))

    def _cache_key(self, scope: str | None, resource: Resource) -> tuple[str, tuple[str, ...]]:
        return " ".join(sorted(set((scope or "").split()))), tuple(sorted(_resources(resource)))

    def _cached_token(self, key: tuple[str, tuple[str, ...]]) -> TokenSet | None:
        entry = self._token_cache.get(key)
        return entry[0] if entry is not None and entry[1] > self._clock() else None

    def _cache_token(self, key: tuple[str, tuple[str, ...]], tokens: TokenSet) -> None:
        """Kept until shortly before expiry (a tenth of its life, at most a minute), so that a token
        handed out is still valid when it reaches the API. Tokens without `expires_in` are not kept."""
        if tokens.expires_at is not None:
            lifetime = tokens.expires_at - self._clock()
            self._token_cache[key] = (tokens, tokens.expires_at - min(60.0, lifetime / 10))

    def _userinfo(self, token: str | TokenSet, subject: str | None) -> Flow[dict[str, Any]]:
        if isinstance(token, TokenSet):
            subject = subject or token.subject
            token = token.access_token
        url = (yield from self._discover()).endpoint("userinfo_endpoint")
        response = yield request("GET", url, headers={"Authorization": f"Bearer {token}",
                                                      "Accept": "application/json"})
        if response is not None and response.headers.get("content-type", "").startswith("application/jwt"):
            raise InvalidResponse("signed or encrypted UserInfo responses are not supported")
        claims = _answer(response, "UserInfo endpoint", {"invalid_token": InvalidToken})
        if not isinstance(claims.get("sub"), str):
            raise InvalidResponse("the UserInfo response has no subject")
        if subject is not None and claims["sub"] != subject:
            raise SubjectMismatch("the UserInfo response is about another user than the ID token")
        return claims

    def _introspect(self, token: str, hint: str | None) -> Flow[dict[str, Any]]:
        form: Form = {"token": token} if hint is None else {"token": token, "token_type_hint": hint}
        body = yield from self._post("introspection_endpoint", form, "introspection endpoint")
        if not isinstance(body.get("active"), bool):
            raise InvalidResponse("the introspection response lacks a boolean 'active'")
        return body

    def _revoke(self, token: str, hint: str | None) -> Flow[None]:
        form: Form = {"token": token} if hint is None else {"token": token, "token_type_hint": hint}
        response = yield from self._send("revocation_endpoint", form)
        if response is None or response.status_code != 200:  # RFC 7009 §2.2: 200 whatever the token was
            _answer(response, "revocation endpoint")

    def _end_session_url(self, id_token_hint: str | TokenSet | None, post_logout_redirect_uri: str | None,
                         state: str | None, logout_hint: str | None) -> Flow[str]:
        """RP-Initiated Logout 1.0 §2; `client_id` always, so that a provider can check the redirect."""
        endpoint = (yield from self._discover()).endpoint("end_session_endpoint")
        hint = id_token_hint.id_token if isinstance(id_token_hint, TokenSet) else id_token_hint
        params = {"client_id": self.client_id, "id_token_hint": hint,
                  "post_logout_redirect_uri": post_logout_redirect_uri, "state": state, "logout_hint": logout_hint}
        query = urlencode([(k, v) for k, v in params.items() if v is not None], quote_via=quote)
        return endpoint + ("&" if urlsplit(endpoint).query else "?") + query

    # --- device authorization grant (RFC 8628) ------------------------------------------------

    def _device_authorization(self, scope: str | None, resource: Resource) -> Flow[DeviceAuthorization]:
        form: Form = {} if scope is None else {"scope": scope}
        if resource:
            form["resource"] = _resources(resource)
        body = yield from self._post("device_authorization_endpoint", form, "device authorization endpoint")
        device_code, user_code = body.get("device_code"), body.get("user_code")
        expires_in = _positive_int(body.get("expires_in"))
        interval = _positive_int(body.get("interval", DEFAULT_INTERVAL))
        complete = body.get("verification_uri_complete")
        try:
            verification_uri = check_url(body.get("verification_uri"), "verification_uri")
            complete = None if complete is None else check_url(complete, "verification_uri_complete")
        except DiscoveryError as exc:
            raise InvalidResponse(f"the device authorization response is malformed: {exc}") from None
        if not (isinstance(device_code, str) and device_code and isinstance(user_code, str) and user_code
                and expires_in is not None and interval is not None):
            raise InvalidResponse("the device authorization response is malformed")
        return DeviceAuthorization(device_code, user_code, verification_uri, complete,
                                   self._clock() + expires_in, interval)

    def _poll_device_token(self, device: DeviceAuthorization) -> Flow[TokenSet]:
        """RFC 8628 §3.4-3.5: wait `interval` before each request, 5 s more after each `slow_down`,
        twice as long after a timeout; stop at anything but `authorization_pending` or on expiry."""
        interval = device.interval
        form: Form = {"grant_type": DEVICE_CODE_GRANT, "device_code": device.device_code}
        while True:
            if self._clock() + interval >= device.expires_at:
                raise ExpiredToken("expired_token", "the device code expired before it was approved")
            yield Sleep(interval)
            try:
                body = yield from self._post("token_endpoint", dict(form), "token endpoint")
            except Timeout:
                interval *= 2
                continue
            except ProviderError as exc:
                if exc.error == "authorization_pending":
                    continue
                if exc.error == "slow_down":
                    interval += SLOW_DOWN_STEP
                    continue
                raise
            return (yield from self._token_set(body))
