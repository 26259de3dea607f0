"""Starting a session and what a successful sign-in hands back: tokens, not HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import Code, ServiceError
from ..observability.context import note_user
from ..services import Services
from ..session_tokens import hash_session_token, new_session_token
from ..store import Connection, Row
from .context import ClientInfo


@dataclass(frozen=True)
class Grant:
    """An access token for `user`, and the session's opaque token when the client gets a new
    one (sign-in, rotation); None when it keeps the one it has."""

    user: Row | dict[str, Any]
    session_id: str
    access_token: str
    expires_in: int
    refresh_token: str | None


def grant(services: Services, row: Row | dict[str, Any], refresh_token: str | None) -> Grant:
    """A grant for a row carrying the user's columns, `session_id` and `claims`."""
    note_user(row["claims"].get("sub"))  # the request's log line names who signed in
    return Grant(
        user=row,
        session_id=row["session_id"],
        access_token=services.tokens.access_token(row["claims"]),
        expires_in=services.settings.payload.exp,
        refresh_token=refresh_token,
    )


def refuse_banned(user: Row | dict[str, Any]) -> None:
    banned_until = user.get("banned_until")
    if banned_until is not None and banned_until > datetime.now(UTC):
        raise ServiceError(Code.USER_BANNED, "User is banned")


async def start_session(
    services: Services,
    conn: Connection,
    user: Row,
    client: ClientInfo,
    method: str = "password",
) -> Grant:
    """A new session for `user`, in the caller's transaction; every sign-in passes here, so a
    banned account gets none. `method` is GoTrue's amr method (password, otp, magiclink, …)."""
    refuse_banned(user)
    token = new_session_token()
    row = await services.store.create_session(
        conn,
        user["id"],
        hash_session_token(token),
        hash_session_token(services.tokens.next_session_token(token)),
        client.user_agent,
        client.address,
        method,
    )
    return grant(services, {**dict(user), **dict(row)}, token)
