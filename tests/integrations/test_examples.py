"""The examples as users run them: real processes against a live Bastion, the Flask login in Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import sync_playwright

from bastion.client import Client
from bastion.demo import DEMO_API, FLASK_EXAMPLE
from bastion.integrations.flask import SESSION_ID, USER
from tests.integrations.conftest import REPO_ROOT, LiveBastion
from tests.integrations.helpers import session_payload
from tests.live_server import free_port, stop_process
from tests.ui.helpers import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, new_context

LOGIN_SUBMIT = 'form:has(input[name="password"]) button[type="submit"]'
ALLOW = 'button[name="decision"][value="allow"]'


@contextmanager
def running(args: list[str], env: dict[str, str], ready_url: str, log_path: Path) -> Iterator[None]:
    """A process started from the repository root, until `ready_url` answers 200; its log shown on failure."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(ready_url, timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"{args} did not start: {log_path.read_text()}")
                time.sleep(0.1)
            try:
                yield
            except BaseException:
                print(f"[{args[-1]}] log:\n{log_path.read_text()[-4000:]}")
                raise
        finally:
            stop_process(proc)


@pytest.mark.ui
def test_flask_example_logs_in_and_out_in_a_browser(bastion: LiveBastion, tmp_path: Path) -> None:
    username, password, email = "carol", "carol's long passphrase", "carol@example.com"
    bastion.server.cli("users", "create", "--username", username, "--password", password, "--email", email,
                        "--name", "Carol Example")  # her own: the first consent is part of the test
    app = f"http://127.0.0.1:{bastion.example_port}"
    env = {**os.environ, "OIDC_ISSUER": bastion.issuer, "OIDC_CLIENT_ID": bastion.client_id,
           "OIDC_CLIENT_SECRET": bastion.client_secret, "APP_PORT": str(bastion.example_port),
           "FLASK_SECRET_KEY": os.urandom(32).hex()}
    with running([sys.executable, "examples/flask_app.py"], env, f"{app}/", tmp_path / "flask.log"), \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = new_context(browser)
        page = context.new_page()
        try:
            page.goto(f"{app}/")
            page.get_by_role("button", name="Log in with Bastion").click()
            page.wait_for_url(f"{bastion.issuer}/interaction/**")
            page.fill('input[name="username"]', username)
            page.fill('input[name="password"]', password)
            page.click(LOGIN_SUBMIT)
            page.wait_for_selector(ALLOW)
            assert "Web App" in page.inner_text("body")
            page.click(ALLOW)
            page.wait_for_url(f"{app}/profile")
            assert page.inner_text("#email") == email
            assert "Carol Example" in page.inner_text("body")
            # Cookies ignore ports: Bastion's own (bastion_*) are there too. The app's holds no token.
            cookies = {c["name"]: c["value"] for c in context.cookies(app) if not c["name"].startswith("bastion")}
            assert set(cookies) == {"session"}, cookies
            payload = session_payload(cookies["session"])
            assert set(payload) == {SESSION_ID, USER} and payload[USER]["email"] == email, payload

            page.get_by_role("button", name="Log out").click()
            page.wait_for_url(f"{app}/")
            assert page.get_by_role("button", name="Log in with Bastion").is_visible()
            assert "not signed in" in page.inner_text("body")
            # Logged out at the provider too: the profile asks for a password again.
            page.goto(f"{app}/profile")
            page.wait_for_url(f"{bastion.issuer}/interaction/**")
            assert page.locator('input[name="password"]').is_visible()
        except BaseException:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=ARTIFACTS / "FAILED-flask-example.png", full_page=True)
            raise
        finally:
            context.close()
            browser.close()


def test_fastapi_example_accepts_a_demo_client_token(bastion: LiveBastion, tmp_path: Path) -> None:
    bastion.server.cli("demo")  # what `make serve` seeds: the example's defaults work with it
    demo_json = Path(bastion.server.env["BASTION_VAR_DIR"]) / "demo.json"
    secret = json.loads(demo_json.read_text())["client_secret"]
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OIDC_ISSUER": bastion.issuer}
    command = [sys.executable, "-m", "uvicorn", "fastapi_api:app", "--app-dir", "examples", "--host", "127.0.0.1",
               "--port", str(port)]
    with running(command, env, f"{api}/public", tmp_path / "uvicorn.log"), \
            Client(bastion.issuer, "demo-client", secret) as client, httpx.Client(base_url=api, timeout=10) as http:
        refused = http.get("/hello")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"

        token = client.client_credentials("hello", resource=DEMO_API).access_token
        hello = http.get("/hello", headers={"Authorization": f"Bearer {token}"})
        assert hello.status_code == 200, hello.text
        assert hello.json() == {"message": "Hello, demo-client!", "client_id": "demo-client", "scopes": ["hello"]}
        schemes = http.get("/openapi.json").json()["components"]["securitySchemes"]
        assert [s["scheme"] for s in schemes.values()] == ["bearer"]

    # Seeding again keeps the secret, and the Flask example's URIs are registered for the demo client.
    bastion.server.cli("demo")
    assert json.loads(demo_json.read_text())["client_secret"] == secret
    authorize = httpx.get(f"{bastion.issuer}/authorize?" + urlencode({
        "response_type": "code", "client_id": "demo-client", "redirect_uri": f"{FLASK_EXAMPLE}/callback",
        "scope": "openid", "state": "s", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256"}))
    assert authorize.status_code == 303 and "/interaction/" in authorize.headers["location"], authorize.text[:300]
