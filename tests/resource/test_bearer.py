"""RFC 6750 helpers: reading the Authorization header and answering with WWW-Authenticate."""

from __future__ import annotations

import pytest

from bastion.resource import (
    AccessToken,
    InsufficientScope,
    InvalidToken,
    MissingToken,
    bearer_token,
    www_authenticate,
)


@pytest.mark.parametrize("header", ["Bearer abc.DEF-_~+/=", "bearer abc", "BEARER  abc  ", "Bearer mF_9.B5f-4.1JqM"])
def test_bearer_token_reads_the_b64token(header: str) -> None:
    assert bearer_token(header) == header.split()[1]


@pytest.mark.parametrize("header", [None, "", "  ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer=abc"])
def test_no_bearer_header_is_a_missing_token(header: str | None) -> None:
    with pytest.raises(MissingToken):
        bearer_token(header)


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b", 'Bearer "abc"', "Bearer abc=def",
                                    "Bearer é"])
def test_a_malformed_bearer_header_is_an_invalid_token(header: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        bearer_token(header)
    assert not isinstance(caught.value, MissingToken)


def test_www_authenticate_for_each_error() -> None:
    assert www_authenticate(InvalidToken("expired"), realm="orders") == (
        'Bearer realm="orders", error="invalid_token", error_description="expired"')
    assert InvalidToken.status == 401 and InsufficientScope.status == 403
    access = AccessToken({}, frozenset({"orders:read"}), "svc", "svc")
    with pytest.raises(InsufficientScope) as caught:
        access.require_scopes("orders:read", "orders:write")
    assert www_authenticate(caught.value, realm="orders") == (
        'Bearer realm="orders", error="insufficient_scope", error_description="missing scope: orders:write", '
        'scope="orders:read orders:write"')
    # No credentials at all: a bare challenge, no error (RFC 6750 §3.1).
    assert www_authenticate(MissingToken("no access token"), realm="orders") == 'Bearer realm="orders"'
    assert www_authenticate(MissingToken("no access token")) == "Bearer"
    # Quotes and backslashes cannot break out of the header's quoted strings.
    value = www_authenticate(InvalidToken('bad "x"\\\r\n'), realm='a"b')
    assert value == 'Bearer realm="a\\"b", error="invalid_token", error_description="bad ?x????"'
