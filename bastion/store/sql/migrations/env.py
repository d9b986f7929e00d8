"""Alembic environment: migrations run on the connection `bastion db upgrade` passes in."""

from __future__ import annotations

from alembic import context

from bastion.store.sql.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `bastion db upgrade`")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
