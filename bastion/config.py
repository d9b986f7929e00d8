"""Settings, read from `BASTION_*` environment variables (and a `.env` file, if present).

The README's configuration table lists each field; `tests/test_config.py` keeps the two in step.
"""

from __future__ import annotations

import os
import secrets
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ConfigError", "Settings", "is_loopback_http"]


class ConfigError(Exception):
    """The configuration cannot be used; the message tells the operator what to set."""


def is_loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BASTION_", env_file=".env", extra="ignore")

    issuer: str = "http://127.0.0.1:8000"
    """The provider's issuer identifier: https in production; http only on loopback."""
    database_url: str = "sqlite+aiosqlite:///var/bastion.db"
    """SQLAlchemy URL: `sqlite+aiosqlite:///path` or `postgresql+asyncpg://user@host/db`."""
    var_dir: Path = Path("var")
    """Where local state lives (the generated key-encryption secret for loopback issuers)."""
    key_encryption_secret: str | None = Field(default=None, repr=False)
    """Encrypts private signing keys at rest; required unless the issuer is loopback http."""
    access_token_ttl: int = Field(default=600, ge=30, le=86400)
    """Access-token lifetime in seconds (10 minutes)."""
    id_token_ttl: int = Field(default=3600, ge=30, le=86400)
    """ID-token lifetime in seconds."""
    authorization_code_ttl: int = Field(default=60, ge=10, le=600)
    """Authorization-code lifetime in seconds (RFC 6749 §4.1.2 recommends 10 minutes at most)."""
    refresh_token_idle_ttl: int = Field(default=14 * 86400, ge=60)
    """A refresh-token family ends when unused for this long, in seconds (14 days)."""
    refresh_token_absolute_ttl: int = Field(default=90 * 86400, ge=60)
    """A refresh-token family ends this long after the user authorized, however used, in seconds (90 days)."""
    refresh_token_reuse_grace: int = Field(default=2, ge=0, le=60)
    """Seconds after a rotation in which the old refresh token fails without revoking its family
    (parallel retries by the legitimate client); later reuse revokes the family."""
    device_code_ttl: int = Field(default=600, ge=60, le=3600)
    """How long a device authorization (its device and user codes) lives, in seconds."""
    device_code_interval: int = Field(default=5, ge=1, le=60)
    """The minimum seconds between a device's token polls (RFC 8628 §3.2)."""
    device_max_wrong_codes: int = Field(default=5, ge=1)
    """Wrong user codes a browser session or client address may enter per minute on /device."""
    client_cache_ttl: int = Field(default=10, ge=0, le=300)
    """How long a server process caches a client's registration, in seconds; 0 disables the cache."""
    session_ttl: int = Field(default=86400, ge=60)
    """Browser login session lifetime in seconds."""
    interaction_ttl: int = Field(default=900, ge=60)
    """How long a user may take on the login and consent pages, in seconds."""
    access_token_alg: str = "RS256"
    """Algorithm of JWT access tokens: RS256 (widest support), ES256 (much faster) or EdDSA."""
    default_audience: str | None = None
    """The `aud` of access tokens when no resource is requested; the issuer when unset."""
    key_refresh_interval: int = Field(default=60, ge=1)
    """How often, in seconds, a running server looks for keys rotated by `bastion keys rotate`."""
    login_max_failures: int = Field(default=5, ge=1)
    """Failed logins allowed per username within the failure window before logins are refused."""
    login_max_failures_per_address: int = Field(default=20, ge=1)
    """Failed logins allowed per client address within the failure window."""
    login_failure_window: int = Field(default=300, ge=1)
    """The failed-login window, in seconds."""
    audit_retention_days: int = Field(default=365, ge=1)
    """Audit events (refresh-token reuse, revocations) are kept this many days."""
    log_level: str = "info"
    """Log level of `bastion serve`."""
    access_log: bool = False
    """A log line per request (method, path, status, time; never a query or body). Off by default, as in
    Keycloak: it costs about a sixth of a token request's time, and security events are logged anyway."""

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("issuer must be an https URL without query or fragment")
        if parts.path not in ("", "/"):
            # Pages, form actions and cookie paths are rooted at "/": serve Bastion on its own host name.
            raise ValueError("issuer must not have a path (serve Bastion at the root of its own host)")
        if parts.scheme == "http" and not is_loopback_http(value):
            raise ValueError("issuer must use https unless it is a loopback address")
        return value.rstrip("/")

    @field_validator("access_token_alg")
    @classmethod
    def _alg(cls, value: str) -> str:
        if value not in ("RS256", "ES256", "EdDSA"):
            raise ValueError("access_token_alg must be RS256, ES256 or EdDSA")
        return value

    @property
    def audience(self) -> str:
        return self.default_audience or self.issuer

    @property
    def secure_cookies(self) -> bool:
        return self.issuer.startswith("https://")

    def resolve_key_encryption_secret(self) -> str:
        """The configured secret, or for a loopback issuer one generated into `var_dir` (mode 0600)."""
        if self.key_encryption_secret:
            if len(self.key_encryption_secret) < 32:
                raise ConfigError("BASTION_KEY_ENCRYPTION_SECRET must be at least 32 characters")
            return self.key_encryption_secret
        if not is_loopback_http(self.issuer):
            raise ConfigError(
                "BASTION_KEY_ENCRYPTION_SECRET is required when the issuer is not a loopback http URL "
                "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        path = self.var_dir / "key-encryption.secret"
        if not path.exists():
            self.var_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
        return path.read_text().strip()
