"""A user's browser at the provider, without a browser: /authorize through login and consent over HTTP.

Unit tests of the Flask integration use it to obtain real authorization responses from a live
Bastion, and hand them to the Flask test client as the browser would.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from itsdangerous import base64_decode

API = "http://127.0.0.1:8001"
"""The audience (RFC 8707 resource) of the API tokens in these tests."""
WEBAPP_SECRET = "webapp-secret-" + "w" * 40
FLASK_ORIGIN = "http://127.0.0.1:5000"
"""Where the Flask test client's app lives (its SERVER_NAME), as registered at the bastion."""


def hidden_inputs(html: str) -> dict[str, str]:
    return {unescape(name): unescape(value)
            for name, value in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', html)}


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


class ProviderUser:
    """One user's cookie jar at the provider: signs in and consents when asked, remembers the session."""

    def __init__(self, issuer: str, username: str, password: str) -> None:
        self.issuer, self.username, self.password = issuer, username, password
        self.http = httpx.Client(timeout=10)
        self.pages: list[str] = []

    def close(self) -> None:
        self.http.close()

    def _on_provider(self, url: str) -> bool:
        return url.startswith(self.issuer + "/")

    def authorize(self, url: str, decision: str = "allow") -> httpx.Response:
        """Follow `url` at the provider until it answers for the client: a redirect off the provider
        (query response mode) or the auto-submitted form (form_post)."""
        response = self.http.get(url)
        for _ in range(10):
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if not self._on_provider(target):
                    return response
                response = self.http.get(target)
                continue
            html = response.text
            self.pages.append(html)
            action = re.search(r'<form method="post" action="([^"]+)"', html)
            assert action, f"unexpected page at the provider ({response.status_code}): {html[:500]}"
            target = urljoin(str(response.url), unescape(action.group(1)))
            if not self._on_provider(target):
                return response  # form_post: the page posts the response to the client
            fields = hidden_inputs(html)
            if 'name="password"' in html:
                fields.update(username=self.username, password=self.password)
            elif 'value="allow"' in html:
                fields["decision"] = decision
            else:
                raise AssertionError(f"unexpected form at the provider: {html[:500]}")
            response = self.http.post(target, data=fields)
        raise AssertionError("too many steps at the provider")


def callback_of(response: httpx.Response) -> str:
    """The callback URL a query-mode authorization response sends the browser to."""
    assert response.is_redirect, (response.status_code, response.text[:300])
    return response.headers["location"]


def session_payload(cookie: str) -> dict[str, Any]:
    """What anyone holding Flask's session cookie reads: it is signed, not encrypted."""
    compressed = cookie.startswith(".")
    data = base64_decode(cookie.lstrip(".").split(".")[0])
    payload: dict[str, Any] = json.loads(zlib.decompress(data) if compressed else data)
    return payload


def set_cookies(response: Any) -> list[str]:
    return list(response.headers.getlist("Set-Cookie"))


def cookie_value(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[1]


def jwt_payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return claims
