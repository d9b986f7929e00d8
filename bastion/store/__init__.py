"""Storage: a small interface (`base.Store`) and its SQLAlchemy implementation (`sql.SQLStore`)."""

from .base import Store

__all__ = ["Store"]
