"""Drive the provider the way a browser and a relying party would, over HTTP."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from bastion.core.provider import Provider

APP_REDIRECT = "https://app.example/cb"
APP_SECRET = "app-secret-" + "x" * 40


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden input {name} in page"
    return match.group(1)


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class AuthRequest:
    params: dict[str, str]
    verifier: str


@dataclass
class Flow:
    http: httpx.AsyncClient
    provider: Provider
    last_pages: list[str] = field(default_factory=list)

    def request(self, **overrides: str | None) -> AuthRequest:
        verifier = secrets.token_urlsafe(48)
        params: dict[str, str | None] = {
            "response_type": "code", "client_id": "app", "redirect_uri": APP_REDIRECT,
            "scope": "openid profile email", "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
            "code_challenge": s256(verifier), "code_challenge_method": "S256",
        }
        params.update(overrides)
        return AuthRequest({k: v for k, v in params.items() if v is not None}, verifier)

    async def authorize(self, req: AuthRequest, method: str = "GET") -> httpx.Response:
        if method == "POST":
            return await self.http.post("/authorize", data=req.params)
        return await self.http.get("/authorize", params=req.params)

    async def follow(self, response: httpx.Response) -> httpx.Response:
        assert response.status_code == 303, (response.status_code, response.text[:300])
        location = response.headers["location"]
        assert location.startswith("/interaction/"), location
        page = await self.http.get(location)
        self.last_pages.append(page.text)
        return page

    async def login(self, page: httpx.Response, username: str = "alice",
                    password: str = "correct horse battery") -> httpx.Response:
        action = re.search(r'action="(/interaction/[^"]+/login)"', page.text)
        assert action, page.text[:500]
        return await self.http.post(action.group(1), data={
            "username": username, "password": password, "csrf_token": hidden(page.text, "csrf_token")})

    async def consent(self, page: httpx.Response, decision: str = "allow") -> httpx.Response:
        action = re.search(r'action="(/interaction/[^"]+/consent)"', page.text)
        assert action, page.text[:500]
        return await self.http.post(action.group(1), data={
            "decision": decision, "csrf_token": hidden(page.text, "csrf_token")})

    async def run(self, req: AuthRequest, *, expect_login: bool = True, expect_consent: bool = True) -> dict[str, str]:
        """From /authorize to the redirect back to the client; returns the callback parameters."""
        response = await self.authorize(req)
        if expect_login or expect_consent:
            page = await self.follow(response)
            if expect_login:
                assert 'name="password"' in page.text, page.text[:300]
                response = await self.login(page)
                if expect_consent:
                    page = await self.follow(response)
            if expect_consent:
                assert 'value="allow"' in page.text, page.text[:300]
                response = await self.consent(page)
            assert response.status_code == 303, (response.status_code, response.text[:300])
            response = await self.http.get(response.headers["location"])
        assert response.status_code == 303, (response.status_code, response.text[:300])
        location = response.headers["location"]
        assert location.startswith(req.params["redirect_uri"].split("?")[0]), location
        return query(location)

    async def exchange(self, code: str, verifier: str, *, client_id: str = "app", secret: str | None = APP_SECRET,
                       redirect_uri: str = APP_REDIRECT, **extra: str) -> httpx.Response:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier, **extra}
        auth = httpx.BasicAuth(client_id, secret) if secret is not None else None
        if secret is None:
            data["client_id"] = client_id
        return await self.http.post("/token", data=data, auth=auth)

    async def tokens(self, **overrides: str | None) -> tuple[AuthRequest, dict[str, Any]]:
        req = self.request(**overrides)
        callback = await self.run(req)
        response = await self.exchange(callback["code"], req.verifier)
        assert response.status_code == 200, response.text
        return req, response.json()
