"""`Client` and `AsyncClient`: the protocol's flows run on `httpx.Client` and `httpx.AsyncClient`.

Both take the same arguments (see `Protocol`); each method only drives the flow of the same name,
except `client_credentials`, whose cache needs a lock of the driver's kind: a thread lock for
`Client`, an asyncio lock for `AsyncClient`, so that 100 concurrent callers cause one token request.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx

from ..sansio import TIMEOUT, Flow, T, drive_async, drive_sync
from .metadata import ProviderMetadata
from .models import AuthorizationRequest, DeviceAuthorization, TokenSet
from .protocol import Protocol, Resource, failure

__all__ = ["AsyncClient", "Client"]


class Client(Protocol[httpx.Client]):
    """An OpenID Connect / OAuth 2.0 client of one provider, for synchronous code. Thread-safe."""

    def _run(self, flow: Flow[T]) -> T:
        if self._http is None:
            self._http, self._owned = httpx.Client(timeout=TIMEOUT), True
        return drive_sync(flow, self._http, failure, self._sleep or time.sleep)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client this Client created (one given to it stays open)."""
        if self._owned and self._http is not None:
            self._http.close()
            self._http, self._owned = None, False

    def discover(self) -> ProviderMetadata:
        """The provider's metadata (cached); `DiscoveryError` if it names another issuer."""
        return self._run(self._discover())

    def start_authorization(self, scope: str = "openid", *, redirect_uri: str | None = None,
                            prompt: str | None = None, max_age: int | None = None, login_hint: str | None = None,
                            resource: Resource = None, acr_values: str | None = None,
                            response_mode: str | None = None,
                            extra: Mapping[str, str] | None = None) -> AuthorizationRequest:
        """A new login: send the user to `.url`, keep the request server-side for the callback."""
        return self._run(self._start_authorization(scope, redirect_uri, prompt, max_age, login_hint, resource,
                                                   acr_values, response_mode, extra))

    def finish_authorization(self, request: AuthorizationRequest, callback: str | Mapping[str, Any]) -> TokenSet:
        """Check the callback (URL, or form_post body), redeem the code, validate the ID token."""
        return self._run(self._finish_authorization(request, callback))

    def userinfo(self, token: str | TokenSet, *, subject: str | None = None) -> dict[str, Any]:
        """The UserInfo claims; their `sub` must be the ID token's (taken from a TokenSet)."""
        return self._run(self._userinfo(token, subject))

    def refresh(self, token: str | TokenSet, *, scope: str | None = None, resource: Resource = None) -> TokenSet:
        """New tokens; the refresh token is the rotated one if the provider rotated it, else the same."""
        return self._run(self._refresh(token, scope, resource))

    def client_credentials(self, scope: str | None = None, *, resource: Resource = None) -> TokenSet:
        """An access token for the client itself, shared per scope and resource until shortly before expiry."""
        key = self._cache_key(scope, resource)
        if (cached := self._cached_token(key)) is not None:
            return cached
        with self._locks.setdefault(key, threading.Lock()):  # setdefault is atomic: one lock per key
            if (cached := self._cached_token(key)) is not None:
                return cached
            tokens = self._run(self._client_credentials(scope, resource))
            self._cache_token(key, tokens)
            return tokens

    def device_authorization(self, scope: str | None = "openid", *, resource: Resource = None) -> DeviceAuthorization:
        """RFC 8628 §3.1: a user code for the user to enter at the verification URI."""
        return self._run(self._device_authorization(scope, resource))

    def poll_device_token(self, device: DeviceAuthorization) -> TokenSet:
        """Wait, polling as RFC 8628 §3.5 asks, until the user approves (`AccessDenied`, `ExpiredToken` else)."""
        return self._run(self._poll_device_token(device))

    def introspect(self, token: str, *, token_type_hint: str | None = None) -> dict[str, Any]:
        """RFC 7662: the provider's view of `token` (`active` and its claims)."""
        return self._run(self._introspect(token, token_type_hint))

    def revoke(self, token: str, *, token_type_hint: str | None = None) -> None:
        """RFC 7009: revoke a refresh or access token (succeeds for an unknown token too)."""
        self._run(self._revoke(token, token_type_hint))

    def end_session_url(self, id_token_hint: str | TokenSet | None = None, *,
                        post_logout_redirect_uri: str | None = None, state: str | None = None,
                        logout_hint: str | None = None) -> str:
        """Where to send the user to log out at the provider too (RP-Initiated Logout)."""
        return self._run(self._end_session_url(id_token_hint, post_logout_redirect_uri, state, logout_hint))


class AsyncClient(Protocol[httpx.AsyncClient]):
    """`Client` for asyncio: the same methods, awaited. Task-safe."""

    async def _run(self, flow: Flow[T]) -> T:
        if self._http is None:
            self._http, self._owned = httpx.AsyncClient(timeout=TIMEOUT), True
        return await drive_async(flow, self._http, failure, self._sleep or asyncio.sleep)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owned and self._http is not None:
            await self._http.aclose()
            self._http, self._owned = None, False

    async def discover(self) -> ProviderMetadata:
        return await self._run(self._discover())

    async def start_authorization(self, scope: str = "openid", *, redirect_uri: str | None = None,
                                  prompt: str | None = None, max_age: int | None = None,
                                  login_hint: str | None = None, resource: Resource = None,
                                  acr_values: str | None = None, response_mode: str | None = None,
                                  extra: Mapping[str, str] | None = None) -> AuthorizationRequest:
        return await self._run(self._start_authorization(scope, redirect_uri, prompt, max_age, login_hint, resource,
                                                         acr_values, response_mode, extra))

    async def finish_authorization(self, request: AuthorizationRequest,
                                   callback: str | Mapping[str, Any]) -> TokenSet:
        return await self._run(self._finish_authorization(request, callback))

    async def userinfo(self, token: str | TokenSet, *, subject: str | None = None) -> dict[str, Any]:
        return await self._run(self._userinfo(token, subject))

    async def refresh(self, token: str | TokenSet, *, scope: str | None = None,
                      resource: Resource = None) -> TokenSet:
        return await self._run(self._refresh(token, scope, resource))

    async def client_credentials(self, scope: str | None = None, *, resource: Resource = None) -> TokenSet:
        key = self._cache_key(scope, resource)
        if (cached := self._cached_token(key)) is not None:
            return cached
        async with self._locks.setdefault(key, asyncio.Lock()):  # no await between lookup and insert
            if (cached := self._cached_token(key)) is not None:
                return cached
            tokens = await self._run(self._client_credentials(scope, resource))
            self._cache_token(key, tokens)
            return tokens

    async def device_authorization(self, scope: str | None = "openid", *,
                                   resource: Resource = None) -> DeviceAuthorization:
        return await self._run(self._device_authorization(scope, resource))

    async def poll_device_token(self, device: DeviceAuthorization) -> TokenSet:
        return await self._run(self._poll_device_token(device))

    async def introspect(self, token: str, *, token_type_hint: str | None = None) -> dict[str, Any]:
        return await self._run(self._introspect(token, token_type_hint))

    async def revoke(self, token: str, *, token_type_hint: str | None = None) -> None:
        await self._run(self._revoke(token, token_type_hint))

    async def end_session_url(self, id_token_hint: str | TokenSet | None = None, *,
                              post_logout_redirect_uri: str | None = None, state: str | None = None,
                              logout_hint: str | None = None) -> str:
        return await self._run(self._end_session_url(id_token_hint, post_logout_redirect_uri, state, logout_hint))
