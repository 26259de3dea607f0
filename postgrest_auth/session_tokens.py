"""Opaque session tokens: random, shown to the client once, stored only as SHA-256."""

from __future__ import annotations

import hashlib
import secrets


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def hash_session_token(token: str) -> bytes:
    # The pre-request hashes the cookie the same way: sha256(convert_to(token, 'UTF8')).
    return hashlib.sha256(token.encode()).digest()
