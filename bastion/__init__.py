"""Bastion: a self-hosted OAuth 2.0 / OpenID Connect provider."""

__version__ = "0.1.0"
