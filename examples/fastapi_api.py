"""A FastAPI service accepting Bastion access tokens: `/public` for anyone, `/hello` with scope `hello`.

With `make serve` running in another terminal (needs the FastAPI extra, `pip install 'bastion[fastapi]'`):

    python examples/fastapi_api.py
    # or: uvicorn fastapi_api:app --app-dir examples --port 8001

It listens on http://127.0.0.1:8001 and accepts tokens whose audience is API_AUDIENCE, by default
http://127.0.0.1:8001: the resource (RFC 8707) the demo client may ask tokens for. Get one with
the client credentials grant, as the demo client (its secret is in var/demo.json)::

    SECRET=$(python -c 'import json; print(json.load(open("var/demo.json"))["client_secret"])')
    TOKEN=$(curl -s -u "demo-client:$SECRET" -d grant_type=client_credentials -d scope=hello \\
              -d resource=http://127.0.0.1:8001 http://127.0.0.1:8000/token \\
            | python -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8001/hello

or with bastion.client::

    from bastion.client import Client
    with Client("http://127.0.0.1:8000", "demo-client", SECRET) as client:
        token = client.client_credentials("hello", resource="http://127.0.0.1:8001").access_token

Without a token, /hello answers 401 with `WWW-Authenticate: Bearer`; http://127.0.0.1:8001/docs
has an "Authorize" button for pasting a token. Settings: OIDC_ISSUER (http://127.0.0.1:8000),
API_AUDIENCE (http://127.0.0.1:8001), API_PORT (8001, for `python examples/fastapi_api.py`).
"""

import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from bastion.integrations.fastapi import CurrentToken, configure, require_token
from bastion.resource import AccessToken, TokenValidator

ISSUER = os.environ.get("OIDC_ISSUER", "http://127.0.0.1:8000")
AUDIENCE = os.environ.get("API_AUDIENCE", "http://127.0.0.1:8001")

app = FastAPI(title="Bastion example API")
configure(app, TokenValidator(ISSUER, AUDIENCE))


@app.get("/public")
async def public() -> dict[str, str]:
    return {"message": "Anyone may read this."}


@app.get("/hello")
async def hello(token: Annotated[AccessToken, Depends(require_token("hello"))]) -> dict[str, Any]:
    return {"message": f"Hello, {token.subject}!", "client_id": token.client_id, "scopes": sorted(token.scopes)}


@app.get("/whoami")
async def whoami(token: CurrentToken) -> dict[str, Any]:
    """Any valid token for this API, whatever its scopes."""
    return {"subject": token.subject, "scopes": sorted(token.scopes)}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("API_PORT", "8001")))
