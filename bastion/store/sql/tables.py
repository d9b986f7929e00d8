"""Table definitions. Schema changes go through Alembic migrations (`bastion db upgrade`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()


def naive_utc(value: datetime) -> datetime:
    """How a datetime is stored: naive, in UTC (a naive one given is refused, its zone unknown)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return value.astimezone(UTC).replace(tzinfo=None)


def aware_utc(value: Any) -> datetime:
    """A stored datetime (or SQLite's text of one) back as timezone-aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stored as naive UTC in every database, returned timezone-aware."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else naive_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else aware_utc(value)


clients = sa.Table(
    "clients", metadata,
    sa.Column("client_id", sa.String(255), primary_key=True),
    sa.Column("client_name", sa.String(255), nullable=False),
    sa.Column("secret_hash", sa.String(64)),
    sa.Column("token_endpoint_auth_method", sa.String(40), nullable=False),
    sa.Column("redirect_uris", sa.JSON, nullable=False),
    sa.Column("post_logout_redirect_uris", sa.JSON, nullable=False),
    sa.Column("grant_types", sa.JSON, nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("application_type", sa.String(10), nullable=False),
    sa.Column("id_token_signed_response_alg", sa.String(10), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("resources", sa.JSON, nullable=False, server_default="[]"),
    sa.Column("access_token_format", sa.String(10), nullable=False, server_default="jwt"),
    sa.Column("permissions", sa.JSON, nullable=False, server_default="[]"),
    sa.Column("refresh_token_policy", sa.String(20), nullable=False, server_default="offline_access"),
)

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(255), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("claims", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

signing_keys = sa.Table(
    "signing_keys", metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("alg", sa.String(10), nullable=False),
    sa.Column("encrypted_private_key", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("retire_at", UTCDateTime),
)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("session_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), nullable=False, index=True),
    sa.Column("auth_time", UTCDateTime, nullable=False),
    sa.Column("amr", sa.JSON, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
)

interactions = sa.Table(
    "interactions", metadata,
    sa.Column("uid", sa.String(64), primary_key=True),
    sa.Column("binding_hash", sa.String(64), nullable=False),
    sa.Column("request", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
    sa.Column("login_at", UTCDateTime),
    sa.Column("consent_given", sa.Boolean, nullable=False, default=False),
    sa.Column("user_id", sa.String(64)),
    sa.Column("consumed", sa.Boolean, nullable=False, default=False),
)

consents = sa.Table(
    "consents", metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("client_id", sa.String(255), primary_key=True),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("granted_at", UTCDateTime, nullable=False),
)

grants = sa.Table(
    "grants", metadata,
    sa.Column("grant_id", sa.String(64), primary_key=True),
    sa.Column("client_id", sa.String(255), nullable=False, index=True),
    sa.Column("user_id", sa.String(64), nullable=False, index=True),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("auth_time", UTCDateTime),
    sa.Column("acr", sa.String(255)),
    sa.Column("amr", sa.JSON, nullable=False, server_default="[]"),
    sa.Column("claims", sa.JSON),
    sa.Column("resources", sa.JSON, nullable=False, server_default="[]"),
    sa.Column("expires_at", UTCDateTime, index=True),
)

refresh_tokens = sa.Table(
    "refresh_tokens", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("grant_id", sa.String(64), nullable=False, index=True),
    sa.Column("client_id", sa.String(255), nullable=False),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
    sa.Column("consumed_at", UTCDateTime),
)

audit_events = sa.Table(
    "audit_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("client_id", sa.String(255)),
    sa.Column("user_id", sa.String(64)),
    sa.Column("grant_id", sa.String(64)),
    sa.Column("detail", sa.Text, nullable=False),
)

authorization_codes = sa.Table(
    "authorization_codes", metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("grant_id", sa.String(64), nullable=False),
    sa.Column("client_id", sa.String(255), nullable=False),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("code_challenge", sa.String(64), nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("nonce", sa.Text),
    sa.Column("claims", sa.JSON),
    sa.Column("acr", sa.String(255)),
    sa.Column("amr", sa.JSON, nullable=False),
    sa.Column("session_id", sa.String(64)),
    sa.Column("auth_time", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
    sa.Column("consumed_at", UTCDateTime),
)

device_authorizations = sa.Table(
    "device_authorizations", metadata,
    sa.Column("device_code_hash", sa.String(64), primary_key=True),
    sa.Column("user_code", sa.String(16), nullable=False, unique=True),
    sa.Column("client_id", sa.String(255), nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("resources", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
    sa.Column("interval", sa.Integer, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("last_polled_at", UTCDateTime),
    sa.Column("grant_id", sa.String(64)),
)

rate_limits = sa.Table(
    "rate_limits", metadata,
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("window_start", UTCDateTime, nullable=False, index=True),
    sa.Column("count", sa.Integer, nullable=False),
)

access_tokens = sa.Table(
    "access_tokens", metadata,
    sa.Column("jti", sa.String(64), primary_key=True),
    sa.Column("grant_id", sa.String(64), index=True),
    sa.Column("client_id", sa.String(255), nullable=False),
    sa.Column("user_id", sa.String(64)),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("userinfo_claims", sa.JSON, nullable=False),
    sa.Column("token_hash", sa.String(64), index=True, unique=True),
    sa.Column("audience", sa.JSON, nullable=False, server_default="[]"),
)
