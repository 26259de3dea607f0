"""`postgrest-auth users show|app-metadata|remove-factors`: the operator's view of one account,
and the way out for a user who lost both the authenticator and the recovery codes.

It runs the service's own account operations (the same rules, transaction and audit event as
the admin API will) over a small pool of its own.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from .accounts import ClientInfo
from .accounts.profile import find_user, public_user, update_app_metadata
from .config import Pool, Settings
from .errors import ServiceError
from .mfa.factors import remove_by_admin
from .passwords import PasswordHasher
from .services import Services

ACTIONS = ("show", "app-metadata", "remove-factors")


class UsageError(Exception):
    """A message for the operator, one line."""


def parse_object(text: str | None) -> dict[str, Any]:
    if text is None:
        raise UsageError("users app-metadata: give the change as a JSON object")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"users app-metadata: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise UsageError("users app-metadata: the change must be a JSON object")
    return value


async def run(settings: Settings, action: str, reference: str, change: str | None) -> None:
    """Print the account as JSON (after the change, for app-metadata)."""
    if action in ("show", "remove-factors") and change is not None:
        raise UsageError(f"users {action}: takes one account, no JSON")
    changes = parse_object(change) if action == "app-metadata" else None
    from .database import open_pool  # the service's pool: jsonb arrives as Python objects

    small = settings.db.model_copy(update={"pool": Pool(min=1, max=2)})  # one at a time
    pool = await open_pool(settings.model_copy(update={"db": small}))
    hasher = PasswordHasher(settings.passwords)
    services = Services.build(settings, pool, hasher)
    try:
        user = await find_user(services, reference)
        if user is None:
            raise UsageError(f"users {action}: no account is {reference!r}")
        if changes is not None:
            try:
                user = await update_app_metadata(services, ClientInfo(), user, changes, by="cli")
            except ServiceError as exc:
                raise UsageError(f"users app-metadata: {exc.message}") from None
        if action == "remove-factors":
            removed = await remove_by_admin(services, ClientInfo(), user["id"])
            print(f"removed {len(removed)} second factor(s)", file=sys.stderr)
        json.dump(public_user(user), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    finally:
        await pool.close()
        hasher.close()
