"""An account's own fields: what its owner (or operator) is shown, and its metadata.

`user_metadata` belongs to the user (GoTrue's `PUT /user {data}`); `app_metadata` to the
operator (the admin API, the command line), so a policy may trust it: users cannot change it.
Both ride in every access token (`access_claims`), so a change reaches PostgREST with the next
token; in cookie mode with the next request, since the pre-request reads the row.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ..errors import Code, ServiceError, field_error, invalid
from ..services import Services
from ..store import Connection, Row
from .audit import Event, record
from .context import ClientInfo
from .sessions import Caller

# Per metadata object, as PostgreSQL prints it (`octet_length(user_metadata::text)`), which
# is what json.dumps(value, ensure_ascii=False) gives: every token carries both objects.
MAX_METADATA_BYTES = 16 * 1024
# What an audit event names of a change: key names only, never values, and not too many.
AUDITED_KEYS, AUDITED_KEY_LENGTH = 50, 64


def public_user(user: Row | dict[str, Any]) -> dict[str, Any]:
    """An account as JSON for its owner or an operator: never its hash or token count."""

    def time(name: str) -> str | None:
        return user[name] and user[name].isoformat()

    return {
        "id": str(user["uid"]),
        "username": user["username"],
        "email": user["email"],
        "email_confirmed_at": time("email_confirmed_at"),
        "new_email": user["new_email"],
        "user_metadata": user["user_metadata"],
        "app_metadata": user["app_metadata"],
        "created_at": time("created_at"),
        "updated_at": time("updated_at"),
        "last_sign_in_at": time("last_sign_in_at"),
    }


def metadata_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())


def too_large(field: str) -> ServiceError:
    return ServiceError(
        Code.METADATA_TOO_LARGE,
        f"{field} would be larger than {MAX_METADATA_BYTES} bytes as JSON",
        [field_error(field, f"must stay within {MAX_METADATA_BYTES} bytes as JSON")],
    )


def checked_changes(field: str, changes: Any) -> dict[str, Any]:
    """A change must be a JSON object, and no larger than the whole may be."""
    if not isinstance(changes, dict):
        raise invalid([field_error(field, "must be a JSON object")])
    if metadata_bytes(changes) > MAX_METADATA_BYTES:  # refused before any database work
        raise too_large(field)
    return changes


def audited_keys(changes: dict[str, Any]) -> dict[str, list[str]]:
    def names(keys: list[str]) -> list[str]:
        return [key[:AUDITED_KEY_LENGTH] for key in sorted(keys)[:AUDITED_KEYS]]

    return {
        "keys": names([k for k, v in changes.items() if v is not None]),
        "removed": names([k for k, v in changes.items() if v is None]),
    }


async def merge_metadata(
    services: Services,
    conn: Connection,
    client: ClientInfo,
    user_id: int,
    column: str,
    changes: dict[str, Any],
    **detail: Any,
) -> Row:
    """Merge `changes` (checked) into the account's `column`, in conn's transaction: a key
    given replaces that key, a key given as null is removed (GoTrue's rule). The account as it
    is now."""
    row = await services.store.merge_metadata(conn, user_id, column, changes, MAX_METADATA_BYTES)
    if row is None:
        raise ServiceError(Code.USER_NOT_FOUND, "The account no longer exists")
    if row["id"] is None:
        raise too_large(column)
    await record(
        services,
        conn,
        Event.METADATA_CHANGED,
        user_id,
        client,
        column=column,
        **audited_keys(changes),
        **detail,
    )
    return row


async def merge_user_metadata(
    services: Services, client: ClientInfo, caller: Caller, changes: dict[str, Any]
) -> Row:
    """The caller changes their own user_metadata (`changes` through checked_changes; see
    own_account). The claims of their tokens change at the next refresh (cookie mode: at the
    next request)."""
    async with services.pool.acquire() as conn, conn.transaction():
        return await merge_metadata(
            services, conn, client, caller.user["id"], "user_metadata", changes
        )


async def update_app_metadata(
    services: Services, client: ClientInfo, user: Row, changes: Any, *, by: str
) -> Row:
    """An operator changes an account's app_metadata (`by`: "cli", "admin_api")."""
    changes = checked_changes("app_metadata", changes)
    if not changes:
        return user
    async with services.pool.acquire() as conn, conn.transaction():
        return await merge_metadata(
            services, conn, client, user["id"], "app_metadata", changes, by=by
        )


async def find_user(services: Services, reference: str) -> Row | None:
    """An account by what an operator knows of it: its UUID, email or username."""
    async with services.pool.acquire() as conn:
        try:
            uid = uuid.UUID(reference)
        except ValueError:
            return await services.store.user_by_login(conn, reference)
        return await services.store.user_by_uid(conn, str(uid))
