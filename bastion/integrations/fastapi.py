"""FastAPI: protect API routes with bearer access tokens, validated by a `TokenValidator`.

    from bastion.integrations.fastapi import CurrentToken, configure, require_token

    app = FastAPI()
    configure(app, TokenValidator("https://id.example.com", audience="https://api.example.com"))

    @app.get("/me")
    async def me(token: CurrentToken) -> dict[str, str]:            # any valid token
        return {"sub": token.subject}

    @app.get("/reports", dependencies=[Depends(require_token("reports:read"))])
    async def reports() -> list[str]: ...

One design: the validator is the app's (`configure`, kept in `app.state`), so that dependencies are
plain values (`CurrentToken`, `require_token(...)`) declared once at import time, and tests swap the
validator, not the routes. Configure the app that serves the routes (a mounted sub-app has its own
`app.state`). Refusals follow RFC 6750: 401 with `WWW-Authenticate: Bearer` (without `error` when no
token was sent), 403 `insufficient_scope` naming the scopes needed. The routes carry an HTTP bearer
security scheme in the OpenAPI schema, so /docs shows the lock and "Authorize".
"""

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from ..resource import AccessToken, InsufficientScope, InvalidToken, TokenValidator, bearer_token, www_authenticate

__all__ = ["BearerScheme", "CurrentToken", "bearer_scheme", "configure", "require_token"]

_VALIDATOR = "bastion_validator"
_REALM = "bastion_realm"


class BearerScheme(SecurityBase):
    """The OpenAPI `http`/`bearer` security scheme; as a dependency, the raw Authorization header.

    Not `fastapi.security.HTTPBearer`: the header is parsed once, by `bastion.resource.bearer_token`,
    which tells a missing token from a malformed one as RFC 6750 asks.
    """

    def __init__(self, scheme_name: str = "BearerToken",
                 description: str | None = "An access token from the provider: `Authorization: Bearer <token>`."
                 ) -> None:
        self.model = HTTPBearerModel(bearerFormat="JWT", description=description)
        self.scheme_name = scheme_name

    async def __call__(self, request: Request) -> str | None:
        return request.headers.get("Authorization")


bearer_scheme = BearerScheme()


def configure(app: FastAPI, validator: TokenValidator, *, realm: str | None = None) -> None:
    """Make `validator` the one that `require_token` dependencies of `app` use."""
    setattr(app.state, _VALIDATOR, validator)
    setattr(app.state, _REALM, realm)


def _validator(request: Request) -> TokenValidator:
    validator = getattr(request.app.state, _VALIDATOR, None)
    if not isinstance(validator, TokenValidator):
        raise RuntimeError("no TokenValidator for this app: call bastion.integrations.fastapi.configure(app, ...)")
    return validator


def require_token(scopes: Iterable[str] | str = ()) -> Callable[..., Awaitable[AccessToken]]:
    """A dependency giving the request's validated `AccessToken`, which must have all `scopes`
    (a list, or space-separated); else 401 or 403 with the RFC 6750 challenge."""
    needed = tuple(scopes.split()) if isinstance(scopes, str) else tuple(scopes)

    async def access_token(request: Request,
                           authorization: Annotated[str | None, Depends(bearer_scheme)]) -> AccessToken:
        validator = _validator(request)
        try:
            token = await validator.validate(bearer_token(authorization))
            token.require_scopes(*needed)
        except (InvalidToken, InsufficientScope) as exc:
            realm = getattr(request.app.state, _REALM, None)
            raise HTTPException(exc.status, detail={"error": exc.error, "error_description": str(exc)},
                                headers={"WWW-Authenticate": www_authenticate(exc, realm)}) from None
        return token

    return access_token


CurrentToken = Annotated[AccessToken, Depends(require_token())]
"""A route parameter holding the request's valid access token (any scopes)."""
