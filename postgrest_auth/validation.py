"""Rules for usernames and new passwords, from configuration; every problem is reported."""

from __future__ import annotations

import re
from typing import Any

from .config import Settings
from .errors import field_error, invalid


def username_problems(settings: Settings, username: str) -> list[dict[str, Any]]:
    if re.fullmatch(settings.usernames.pattern, username):
        return []
    return [field_error("username", f"must match {settings.usernames.pattern}")]


def password_problems(settings: Settings, field: str, password: str) -> list[dict[str, Any]]:
    size = len(password.encode())
    policy = settings.passwords
    if size < policy.min_bytes:
        return [field_error(field, f"must be at least {policy.min_bytes} bytes long")]
    if size > policy.max_bytes:
        return [field_error(field, f"must be at most {policy.max_bytes} bytes long (UTF-8)")]
    return []


def refuse_if(problems: list[dict[str, Any]]) -> None:
    if problems:
        raise invalid(problems)
