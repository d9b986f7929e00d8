"""The SQLAlchemy implementation of the store: SQLite (default) and PostgreSQL."""

from .store import SQLStore, create_store

__all__ = ["SQLStore", "create_store"]
