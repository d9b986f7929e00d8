"""One live `bastion serve` for the whole directory, with a client registered for the Flask tests
(unit tests at FLASK_ORIGIN, the example app on a free port) and for the API tests (client credentials
for the resource API)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bastion.client import Client

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # so `tests.live_server` imports however pytest is started
    sys.path.insert(0, str(REPO_ROOT))

from tests.integrations.helpers import API, FLASK_ORIGIN, WEBAPP_SECRET, ProviderUser  # noqa: E402
from tests.live_server import LiveServer, free_port, live_server  # noqa: E402


@dataclass(frozen=True)
class LiveBastion:
    server: LiveServer
    example_port: int
    """The free port examples/flask_app.py runs on, registered for the `webapp` client."""
    client_id: str = "webapp"
    client_secret: str = WEBAPP_SECRET

    @property
    def issuer(self) -> str:
        return self.server.issuer


@pytest.fixture(scope="package")
def bastion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBastion]:
    port = free_port()
    example = f"http://127.0.0.1:{port}"
    with live_server(tmp_path_factory.mktemp("bastion-integrations")) as server:
        server.cli("clients", "create", "--client-id", "webapp", "--secret", WEBAPP_SECRET, "--name", "Web App",
                   "--redirect-uri", f"{FLASK_ORIGIN}/callback", "--redirect-uri", f"{example}/callback",
                   "--post-logout-redirect-uri", f"{FLASK_ORIGIN}/", "--post-logout-redirect-uri", f"{example}/",
                   "--grant-type", "authorization_code", "--grant-type", "refresh_token",
                   "--grant-type", "client_credentials", "--resource", API,
                   "--scope", "openid profile email offline_access hello reports")
        yield LiveBastion(server, port)


@pytest.fixture(scope="package")
def alice(bastion: LiveBastion) -> Iterator[ProviderUser]:
    user = ProviderUser(bastion.issuer, bastion.server.username, bastion.server.password)
    try:
        yield user
    finally:
        user.close()


@pytest.fixture
def free_port_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass(frozen=True)
class ApiTokens:
    hello: str
    """Scope `hello`, for the API."""
    reports: str
    """Scope `reports` only, for the API."""
    other_audience: str
    """Scope `hello`, but meant for the provider itself (no resource requested)."""


@pytest.fixture(scope="package")
def api_tokens(bastion: LiveBastion) -> Iterator[ApiTokens]:
    with Client(bastion.issuer, bastion.client_id, bastion.client_secret) as client:
        yield ApiTokens(client.client_credentials("hello", resource=API).access_token,
                        client.client_credentials("reports", resource=API).access_token,
                        client.client_credentials("hello").access_token)
