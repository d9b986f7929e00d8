"""`require_token` for Flask APIs: RFC 6750 answers, the AccessToken in `flask.g`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, g, jsonify
from flask.testing import FlaskClient

from bastion.integrations.flask import require_token
from bastion.resource import TokenValidator
from tests.integrations.conftest import ApiTokens, LiveBastion
from tests.integrations.helpers import API


@pytest.fixture(scope="module")
def api(bastion: LiveBastion) -> Iterator[FlaskClient]:
    validator = TokenValidator(bastion.issuer, API)
    app = Flask(__name__)
    app.config["TESTING"] = True

    @app.get("/hello")
    @require_token(validator, ["hello"], realm="example")
    def hello() -> Any:
        return jsonify(subject=g.access_token.subject, scopes=sorted(g.access_token.scopes),
                       client_id=g.access_token.client_id)

    @app.get("/any")
    @require_token(validator)
    def any_token() -> Any:
        return jsonify(subject=g.access_token.subject)

    yield app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_token_is_401_without_an_error_code(api: FlaskClient) -> None:
    for headers in ({}, {"Authorization": "Basic d2ViYXBwOng="}):
        response = api.get("/hello", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="example"'  # RFC 6750 §3.1: no error
        assert response.get_json()["error"] == "invalid_token"


@pytest.mark.parametrize("header", ["Bearer garbage", "Bearer a.b.c", "Bearer", "Bearer two tokens"])
def test_a_bad_token_is_401_invalid_token(api: FlaskClient, header: str) -> None:
    response = api.get("/hello", headers={"Authorization": header})
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="example", error="invalid_token"'), challenge
    assert response.get_json()["error"] == "invalid_token"


def test_a_token_for_another_audience_is_401(api: FlaskClient, api_tokens: ApiTokens) -> None:
    response = api.get("/hello", headers=bearer(api_tokens.other_audience))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_missing_scope_is_403_insufficient_scope(api: FlaskClient, api_tokens: ApiTokens) -> None:
    response = api.get("/hello", headers=bearer(api_tokens.reports))
    assert response.status_code == 403
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="hello"' in challenge, challenge
    assert response.get_json()["error"] == "insufficient_scope"


def test_a_good_token_reaches_the_view_in_g(api: FlaskClient, api_tokens: ApiTokens) -> None:
    response = api.get("/hello", headers=bearer(api_tokens.hello))
    assert response.status_code == 200
    assert response.get_json() == {"subject": "webapp", "scopes": ["hello"], "client_id": "webapp"}
    assert api.get("/any", headers=bearer(api_tokens.reports)).get_json() == {"subject": "webapp"}
