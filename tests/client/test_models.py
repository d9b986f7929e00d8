"""What applications keep between requests survives a JSON session store, and nothing else passes for it."""

from __future__ import annotations

import json

import pytest

from bastion.client import AuthorizationRequest, ClientError, TokenSet


def test_a_token_set_survives_a_json_store() -> None:
    tokens = TokenSet("at", "Bearer", 1_800_000_000.5, "rt", "idt", {"sub": "alice", "amr": ["pwd"]}, "openid",
                      {"access_token": "at", "token_type": "Bearer", "extra": 1})
    restored = TokenSet.from_dict(json.loads(json.dumps(tokens.to_dict())))
    assert restored == tokens and restored.subject == "alice" and restored.raw["extra"] == 1


def test_an_authorization_request_with_resources_survives_a_json_store() -> None:
    login = AuthorizationRequest("https://op.example/authorize?x", "s", "n", "v", "https://app.example/cb", 60,
                                 "openid", ("https://api.example", "https://api2.example"))
    assert AuthorizationRequest.from_dict(json.loads(json.dumps(login.to_dict()))) == login


@pytest.mark.parametrize("data", [{}, {"access_token": "at"}, {"access_token": 1, "token_type": "Bearer",
                                                               "expires_at": None}, {"nonsense": True}])
def test_something_else_is_not_taken_for_a_token_set(data: dict[str, object]) -> None:
    with pytest.raises(ClientError):
        TokenSet.from_dict(data)
