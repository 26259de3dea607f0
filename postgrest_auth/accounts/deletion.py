"""Deleting one's own account, proven by the password or by a sign-in minutes ago.

Everything of the account goes in one transaction (its row, and with it its sessions and
one-time tokens; its unsent mail; its compat-mode role), except its audit trail, which keeps
the id. Its tokens die at PostgREST on their next request: their session is gone.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from ..errors import Code, ServiceError
from ..services import Services
from ..store import Connection, Row
from .audit import Event, record
from .context import ClientInfo
from .credentials import WRONG, verify_password
from .sessions import Caller

log = logging.getLogger(__name__)

# A session younger than this is proof enough without the password (GoTrue's reauthentication
# asks for a fresh sign-in in the same spirit); accounts without a password rely on it.
FRESH_SIGN_IN_SECONDS = 5 * 60


async def delete_account(
    services: Services, client: ClientInfo, caller: Caller, password: str | None
) -> None:
    """With `password`, checked as a sign-in is (same limits, same failures); without, the
    caller's session must have begun less than FRESH_SIGN_IN_SECONDS ago."""
    if password is not None:
        await _verify_own_password(services, client, caller.user, password)
    try:
        async with services.pool.acquire() as conn, conn.transaction():
            if password is None and not await _signed_in_recently(services, conn, caller):
                raise ServiceError(
                    Code.REAUTHENTICATION_NEEDED,
                    "Give your password, or sign in again: deleting the account without it"
                    f" needs a sign-in less than {FRESH_SIGN_IN_SECONDS // 60} minutes old",
                )
            await remove_account(services, conn, client, caller.user["id"])
    except asyncpg.ForeignKeyViolationError as exc:
        raise ServiceError(
            Code.ACCOUNT_REFERENCED,
            "The account cannot be deleted: other data still refers to it",
        ) from exc


async def _verify_own_password(
    services: Services, client: ClientInfo, user: Row, password: str
) -> None:
    """verify_password finds accounts by login: the caller's username, else its email."""
    by_email = user["username"] is None
    login = user["email"] if by_email else user["username"]
    proven = await verify_password(
        services, client, "delete_account", login, password, by_email=by_email
    )
    if proven["id"] != user["id"]:  # the login moved to another account meanwhile
        raise ServiceError(Code.INVALID_CREDENTIALS, WRONG)


async def _signed_in_recently(services: Services, conn: Connection, caller: Caller) -> bool:
    if caller.session_id is None:
        return False
    return await services.store.session_started_within(
        conn, caller.user["id"], caller.session_id, FRESH_SIGN_IN_SECONDS
    )


async def remove_account(
    services: Services, conn: Connection, client: ClientInfo, user_id: int, **detail: Any
) -> None:
    """In conn's transaction (the owner's deletion, or an operator's). The row goes first:
    it locks the account, and says which addresses and role were its own at that moment."""
    store = services.store
    deleted = await store.delete_user(conn, user_id)
    if deleted is None:  # deleted meanwhile by another request
        raise ServiceError(Code.SESSION_ENDED, "The account no longer exists")
    await record(services, conn, Event.ACCOUNT_DELETED, user_id, client, **detail)
    addresses = [a for a in (deleted["email"], deleted["new_email"]) if a]
    await store.delete_unsent_mail_to(conn, addresses)  # before the notice is queued
    role = deleted["username_lowercase"]
    if services.settings.roles.per_user and role is not None:
        if await store.drop_user_role(conn, role) == "kept":
            log.warning("deleted account's role %s left in place: not a plain user role", role)
    if deleted["email"]:
        await services.outbox.enqueue(
            conn, "account_deleted", deleted["email"], username=deleted["username"]
        )
