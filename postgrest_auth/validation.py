"""Rules for usernames and new passwords, from configuration; every problem is reported."""

from __future__ import annotations

import re
from typing import Any

from .config import Settings
from .errors import field_error, invalid


def username_problems(settings: Settings, username: str) -> list[dict[str, Any]]:
    if not re.fullmatch(settings.usernames.pattern, username):
        return [field_error("username", f"must match {settings.usernames.pattern}")]
    roles = settings.roles
    # Compat mode names a database role (and the tokens' role claim) after the username: never
    # one of the service's own roles.
    reserved = {roles.anonymous, roles.user, roles.authenticator, roles.service}
    if roles.per_user and username.lower() in {name.lower() for name in reserved}:
        return [field_error("username", "is not available")]
    return []


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
