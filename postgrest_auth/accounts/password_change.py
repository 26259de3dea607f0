"""A new password, proven by the current one or by a mailed reset token; every older token dies."""

from __future__ import annotations

import hmac

from ..errors import Code, ServiceError, field_error
from ..services import Services
from ..store import Connection, Row
from ..tokens import RESET, InvalidToken
from ..validation import password_problems, refuse_if
from .audit import Event, record
from .confirmation import refuse_unconfirmed
from .context import ClientInfo
from .credentials import verify_password
from .grants import Grant, start_session
from .sessions import Caller


def check_new_password(services: Services, new_password: str, confirmation: str | None) -> None:
    problems = password_problems(services.settings, "new_password", new_password)
    if confirmation is not None and new_password != confirmation:
        problems.append(field_error("new_password_confirm", "does not match new_password"))
    refuse_if(problems)


async def user_proving_reset(
    services: Services, client: ClientInfo, username: str, reset_token: str
) -> Row:
    """The account a reset token was mailed for, if the token is still good for it.

    Counted per address and per account like a password: a reset token cannot be guessed,
    but nobody gets to hammer the endpoint with them either."""
    async with services.pool.acquire() as conn:
        await services.limiter.hit_address(conn, "change_password", client.address)
        await services.limiter.hit_account(conn, "reset_token", username)
    try:
        claims = services.tokens.decode(reset_token, RESET)
    except InvalidToken as exc:
        raise ServiceError(Code.INVALID_RESET_TOKEN, f"The reset token is refused: {exc}") from exc
    async with services.pool.acquire() as conn:
        user = await services.store.user_by_username(conn, username)
    if (
        user is None
        or claims.get("sub") not in (str(user["uid"]), str(user["id"]))
        or user["token_count"] != claims["count"]
        or not hmac.compare_digest(
            str(claims.get("eml", "")), services.tokens.email_fingerprint(user["email"])
        )
    ):
        # Used already (the count moved on), made for another account, or mailed to an
        # address the account no longer has.
        raise ServiceError(Code.INVALID_RESET_TOKEN, "The reset token is no longer valid")
    return user


async def change_password(
    services: Services,
    client: ClientInfo,
    username: str,
    new_password: str,
    *,
    confirmation: str | None,
    current_password: str | None = None,
    reset_token: str | None = None,
) -> Grant:
    """Every session ends (every device signs in anew) and a new one starts for this client."""
    check_new_password(services, new_password, confirmation)
    if reset_token is not None:
        user = await user_proving_reset(services, client, username, reset_token)
    else:
        user = await verify_password(
            services, client, "change_password", username, current_password or "", by_email=False
        )
        refuse_unconfirmed(services, user)  # it starts a session, as a sign-in does
    new_hash = await services.hasher.hash(new_password)
    async with services.pool.acquire() as conn, conn.transaction():
        updated = await services.store.set_password(conn, user["id"], new_hash, user["token_count"])
        if updated is None:  # another change won the race; this proof is spent
            raise ServiceError(
                Code.INVALID_CREDENTIALS, "The password changed meanwhile; try again"
            )
        await services.store.revoke_sessions(conn, user["id"])
        granted = await start_session(services, conn, updated, client)
        if reset_token is not None:
            await record(services, conn, Event.RESET_USED, user["id"], client)
        await record(services, conn, Event.PASSWORD_CHANGED, user["id"], client)
        if updated["email"]:
            await services.outbox.enqueue(
                conn, "password_changed", updated["email"], username=updated["username"]
            )
    return granted


# GoTrue's secure password change: a session older than this must sign in again first.
FRESH_SESSION_SECONDS = 24 * 3600


async def own_password_hash(services: Services, caller: Caller, new_password: str) -> str:
    """Every refusal of the caller's new password (see set_own_password), then its hash:
    own_account asks this before it changes anything, so a refused password leaves the
    metadata given with it unchanged."""
    check_new_password(services, new_password, None)
    same, _ = await services.hasher.verify(new_password, caller.user["password"])
    if same:
        raise ServiceError(
            Code.SAME_PASSWORD, "New password should be different from the old password"
        )
    async with services.pool.acquire() as conn:
        await _refuse_stale_session(services, conn, caller)
    return await services.hasher.hash(new_password)


async def _refuse_stale_session(services: Services, conn: Connection, caller: Caller) -> None:
    if caller.session_id is None or not await services.store.session_started_within(
        conn, caller.user["id"], caller.session_id, FRESH_SESSION_SECONDS
    ):
        raise ServiceError(
            Code.REAUTHENTICATION_NEEDED,
            "Sign in again to change the password: this session is more than a day old",
        )


async def set_own_password(
    services: Services, client: ClientInfo, caller: Caller, new_hash: str
) -> Row:
    """The signed-in caller sets a new password (GoTrue's `PUT /user`; `new_hash` from
    own_password_hash): every other session ends and every sessionless token dies, while the
    caller's session goes on (its client keeps its tokens). No current password is asked, as
    GoTrue asks none; instead the session must be under a day old, so a token stolen from a
    long-lived session cannot take the account. After a recovery link or code the session is
    new, which is how a forgotten password is set (an account with a second factor proves it
    too: own_account checks that first).
    """
    user = caller.user
    async with services.pool.acquire() as conn, conn.transaction():
        await _refuse_stale_session(services, conn, caller)
        updated = await services.store.set_password(conn, user["id"], new_hash, user["token_count"])
        if updated is None:
            raise ServiceError(
                Code.INVALID_CREDENTIALS, "The password changed meanwhile; try again"
            )
        await services.store.revoke_sessions(conn, user["id"], keep=caller.session_id)
        await record(services, conn, Event.PASSWORD_CHANGED, user["id"], client, via="user")
        if updated["email"]:
            await services.outbox.enqueue(
                conn,
                "password_changed",
                updated["email"],
                username=updated["username"] or updated["email"],
            )
    return updated
