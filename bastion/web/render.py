"""HTML pages: Jinja2 with autoescaping, security headers, and the authorization response."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import jinja2
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..core.endpoints.authorize import AuthorizationResponse

__all__ = ["authorization_redirect", "error_page", "page", "redirect"]

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

# No third-party resources, no framing (RFC 9700 §4.16), no referrer leaks (§4.2.4).
PAGE_CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def page(template: str, status: int = 200, csp: str = PAGE_CSP, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, "Content-Security-Policy": csp})


def error_page(message: str, status: int = 400, title: str = "Something went wrong") -> HTMLResponse:
    return page("error.html", status=status, title=title, message=message)


def redirect(url: str) -> Response:
    # 303: the browser follows with GET, never re-posting the user's credentials (RFC 9700 §4.12).
    return RedirectResponse(url, status_code=303, headers={**PAGE_HEADERS})


def authorization_redirect(response: AuthorizationResponse) -> Response:
    """Deliver the authorization response by query (RFC 6749 §4.1.2) or auto-submitted form_post."""
    if response.response_mode == "form_post":
        nonce = secrets.token_urlsafe(16)
        csp = f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self'; frame-ancestors 'none'; " \
              "base-uri 'none'"
        return page("form_post.html", csp=csp, action=response.redirect_uri, params=response.params, nonce=nonce)
    parts = urlsplit(response.redirect_uri)
    query = "&".join(q for q in (parts.query, urlencode(response.params)) if q)
    return redirect(urlunsplit(parts._replace(query=query)))
