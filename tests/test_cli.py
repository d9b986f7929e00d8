"""The operator CLI, run as operators run it."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from bastion.cli import main
from bastion.config import Settings
from bastion.core.keyring import load_keys
from bastion.core.provider import utcnow
from bastion.store.sql import create_store


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BASTION_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/b.db")
    monkeypatch.setenv("BASTION_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("BASTION_ISSUER", "http://127.0.0.1:8000")
    return tmp_path


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_commands_refuse_an_unmigrated_database(env: Path) -> None:
    code, _, err = run("clients", "list")
    assert code == 1 and "bastion db upgrade" in err
    code, _, err = run("serve", "--port", "1")
    assert code == 1 and "bastion db upgrade" in err


def test_generated_client_secret_is_shown_once_and_stored_hashed(env: Path) -> None:
    assert run("db", "upgrade")[0] == 0
    assert run("db", "upgrade")[0] == 0  # idempotent
    code, out, _ = run("clients", "create", "--client-id", "web", "--redirect-uri", "https://rp.example/cb",
                       "--scope", "openid email", "--name", "Web App", "--json")
    assert code == 0
    created = json.loads(out)
    secret = created["client_secret"]
    assert len(secret) >= 43  # 256 bits
    assert created["token_endpoint_auth_method"] == "client_secret_basic" and created["scope"] == "openid email"
    raw = sqlite3.connect(env / "b.db").execute("select * from clients").fetchall()
    assert secret not in repr(raw)
    code, out, _ = run("clients", "show", "web", "--json")
    assert code == 0 and secret not in out and "\"client_secret\"" not in out
    assert run("clients", "create", "--client-id", "web", "--redirect-uri", "https://rp.example/cb")[0] == 1


@pytest.mark.parametrize("uri", ["http://rp.example/cb", "https://rp.example/cb#frag", "/relative"])
def test_unsafe_redirect_uris_are_refused(env: Path, uri: str) -> None:
    run("db", "upgrade")
    code, _, err = run("clients", "create", "--client-id", "x", "--redirect-uri", uri)
    assert code == 1 and "redirect URI" in err


def test_public_native_client(env: Path) -> None:
    run("db", "upgrade")
    code, out, _ = run("clients", "create", "--client-id", "cli", "--public", "--redirect-uri",
                       "http://127.0.0.1/callback", "--json")
    created = json.loads(out)
    assert code == 0 and "client_secret" not in created
    assert created["token_endpoint_auth_method"] == "none" and created["application_type"] == "native"


def test_users_and_deletion(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run("db", "upgrade")
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret password\n"))
    code, out, _ = run("users", "create", "--username", "bob", "--password-stdin", "--email", "bob@example.com")
    assert code == 0 and "created user bob" in out
    raw = sqlite3.connect(env / "b.db").execute("select password_hash from users").fetchone()[0]
    assert raw.startswith("$argon2id$") and "s3cret" not in raw
    assert "bob" in run("users", "list")[1]
    assert run("users", "delete", "bob")[0] == 0
    assert run("users", "delete", "bob")[0] == 1


def test_key_rotation_keeps_old_keys_published(env: Path) -> None:
    run("db", "upgrade")
    settings = Settings()
    secret = settings.resolve_key_encryption_secret()

    async def keyset():  # type: ignore[no-untyped-def]
        store = create_store(settings.database_url)
        try:
            return await load_keys(store, secret, utcnow())
        finally:
            await store.close()

    before = asyncio.run(keyset())
    assert run("keys", "rotate", "--alg", "RS256")[0] == 0
    after = asyncio.run(keyset())
    assert after.signing_key("RS256").kid != before.signing_key("RS256").kid
    assert after.signing_key("ES256").kid == before.signing_key("ES256").kid
    published = {k["kid"] for k in after.jwks["keys"]}
    assert before.signing_key("RS256").kid in published and after.signing_key("RS256").kid in published
    code, out, _ = run("keys", "list")
    assert code == 0 and "retiring" in out and out.count("signing") == 3
