"""Alembic migrations, run from code (`bastion db upgrade`) so no alembic.ini is needed."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from .store import create_engine

__all__ = ["SchemaOutdated", "alembic_config", "check_schema_current", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaOutdated(Exception):
    """The database schema is not at the version this code needs."""


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def upgrade(url: str) -> None:
    engine = create_engine(url)
    config = alembic_config(url)
    try:
        async with engine.begin() as conn:
            def run(sync_conn: sa.Connection) -> None:
                config.attributes["connection"] = sync_conn
                command.upgrade(config, "head")

            await conn.run_sync(run)
    finally:
        await engine.dispose()


async def check_schema_current(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        current = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    head = head_revision()
    if current != head:
        raise SchemaOutdated(
            f"The database schema is at {current or 'nothing (empty database)'}, this Bastion needs {head}. "
            "Run `bastion db upgrade` first."
        )
