"""The README documents every setting, and unsafe configurations are refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bastion.config import ConfigError, Settings


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    documented = set(re.findall(r"`BASTION_([A-Z_]+)`", readme))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_https_issuer_requires_a_key_encryption_secret(tmp_path: Path) -> None:
    settings = Settings(issuer="https://id.example.com", var_dir=tmp_path)
    with pytest.raises(ConfigError, match="BASTION_KEY_ENCRYPTION_SECRET"):
        settings.resolve_key_encryption_secret()
    assert not list(tmp_path.iterdir())


def test_loopback_issuer_generates_a_private_secret_once(tmp_path: Path) -> None:
    settings = Settings(issuer="http://127.0.0.1:8000", var_dir=tmp_path)
    first = settings.resolve_key_encryption_secret()
    assert first == settings.resolve_key_encryption_secret() and len(first) >= 32
    assert (tmp_path / "key-encryption.secret").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("issuer", ["http://id.example.com", "https://id.example.com/?x=1", "ftp://x", "not a url",
                                    "https://id.example.com/op"])
def test_unsafe_issuers_are_refused(issuer: str) -> None:
    with pytest.raises(ValidationError):
        Settings(issuer=issuer)
