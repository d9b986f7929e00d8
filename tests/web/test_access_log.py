"""The access log: off unless asked for (BASTION_ACCESS_LOG), and never holding a query string."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from bastion.config import Settings
from bastion.store.sql.migrate import upgrade
from bastion.web.app import create_app
from tests.conftest import ISSUER


@pytest.mark.parametrize("enabled", [False, True])
async def test_the_access_log_is_off_by_default_and_never_logs_a_query(
        enabled: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(issuer=ISSUER, database_url=f"sqlite+aiosqlite:///{tmp_path}/b.db", var_dir=tmp_path,
                        key_encryption_secret="k" * 48, **({"access_log": True} if enabled else {}))
    await upgrade(settings.database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        caplog.clear()
        assert (await http.get("/jwks?code=secret-code-value")).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "bastion.access"]
    if enabled:
        assert len(lines) == 1 and lines[0].startswith("GET /jwks 200 ") and "secret" not in lines[0]
    else:
        assert lines == []
    logging.getLogger("bastion.access").setLevel(logging.NOTSET)
