"""Signing in, refreshing, knowing the caller, and signing out: one session per device."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import Code, ServiceError
from ..observability.context import note_user
from ..services import Services
from ..session_tokens import hash_session_token
from ..store import Connection, Row
from ..tokens import ACCESS, InvalidToken, is_node_token
from .audit import Event, record
from .confirmation import refuse_unconfirmed
from .context import ClientInfo
from .credentials import verify_password
from .grants import Grant, grant, start_session


@dataclass(frozen=True)
class Caller:
    """The signed-in user of a request, and the session its credentials belong to."""

    user: Row
    session_id: str | None


async def sign_in_with_password(
    services: Services, client: ClientInfo, login: str, password: str, *, by_email: bool
) -> Grant:
    user = await verify_password(services, client, "login", login, password, by_email=by_email)
    refuse_unconfirmed(services, user)  # only now: before the password, it would enumerate
    async with services.pool.acquire() as conn, conn.transaction():
        await services.store.record_sign_in(conn, user["id"])
        await record(services, conn, Event.SIGNED_IN, user["id"], client, method="password")
        return await start_session(services, conn, user, client)


def access_claims(services: Services, token: str) -> dict[str, Any]:
    """The claims of a valid access token (ours or the Node original's)."""
    try:
        return services.tokens.decode(token, ACCESS)
    except InvalidToken as exc:
        raise ServiceError(Code.INVALID_TOKEN, f"Bearer token refused: {exc}") from exc


async def refresh_with_access_token(services: Services, client: ClientInfo, token: str) -> Grant:
    """The token's session extended; a Node-era token (no session) is traded for one of ours.
    The grant carries the session's claims, not the user's columns: its answer is tokens."""
    claims = access_claims(services, token)
    store = services.store
    async with services.pool.acquire() as conn:
        if is_node_token(claims):
            user = await store.user_by_username(conn, claims["aud"])
            # Only accounts adopted from the Node database: a later one may have taken the name.
            if (
                user is not None
                and user["adopted_at"] is not None
                and user["token_count"] == claims["count"]
            ):
                return await start_session(services, conn, user, client)
        elif isinstance(claims.get("sid"), str):
            row = await store.refresh_session_by_claims(conn, claims["sid"], str(claims["sub"]))
            if row is not None:
                return grant(services, row, None)
    raise ServiceError(Code.TOKEN_REVOKED, "The token is no longer valid")


# What retired_session_token adds to the user's columns: never part of an answer.
RETIRED_ONLY = ("token_hash", "live", "recent")
# How many rotations a token retired under reuse_interval ago may lag behind the current one.
MAX_ROTATIONS_BEHIND = 16


async def refresh_with_session_token(
    services: Services, client: ClientInfo, session_token: str, *, linked: bool = False
) -> Grant:
    """A new access token and a new opaque token (refresh token or cookie) for the session the
    presented one names; the presented one retires.

    A retired token presented again within `sessions.reuse_interval` (two tabs refreshing at
    once, a retry after a lost answer) gets the session's current tokens. Later, two parties
    hold copies of one session, and nobody can tell the thief: the whole session ends.
    `linked`: the grant's user carries its identities and factors (an API that lists them).
    """
    store = services.store
    presented = hash_session_token(session_token)
    successor = services.tokens.next_session_token(session_token)
    async with services.pool.acquire() as conn:
        after = services.tokens.next_session_token(successor)
        row = await store.rotate_session_token(
            conn, presented, hash_session_token(successor), hash_session_token(after), linked
        )
        if row is not None:
            return grant(services, row, successor)
        retired = await store.retired_session_token(conn, presented)
        if retired is None or not retired["live"]:
            # Failures count per address: nobody gets to hammer the endpoint with guesses.
            await services.limiter.hit_address(conn, "refresh", client.address)
            raise ServiceError(Code.SESSION_ENDED, "The session has ended; sign in again")
        if retired["recent"]:
            current = _current_token(services, successor, retired["token_hash"])
            if current is not None:
                answered = {k: v for k, v in retired.items() if k not in RETIRED_ONLY}
                return grant(services, answered, current)
        reason = "successor_unknown" if retired["recent"] else "after_reuse_interval"
        await _end_reused_session(services, conn, client, retired, reason)
    raise ServiceError(
        Code.REFRESH_TOKEN_REUSED, "This refresh token was already used; the session has ended"
    )


def _current_token(services: Services, successor: str, current_hash: bytes) -> str | None:
    """The session's current token, found by following the chain from the presented token's
    successor; None when it is not among the next few (the signing key changed, or abuse)."""
    token = successor
    for _ in range(MAX_ROTATIONS_BEHIND):
        if hmac.compare_digest(hash_session_token(token), current_hash):
            return token
        token = services.tokens.next_session_token(token)
    return None


async def _end_reused_session(
    services: Services, conn: Connection, client: ClientInfo, retired: Row, reason: str
) -> None:
    """Revoke the session (its access tokens die at PostgREST on their next request) and
    record the reuse once, however many copies arrive at once."""
    user_id = retired["id"]
    async with conn.transaction():
        if await services.store.revoke_session(conn, user_id, retired["session_id"]):
            await record(
                services,
                conn,
                Event.REFRESH_TOKEN_REUSED,
                user_id,
                client,
                session_id=retired["session_id"],
                reason=reason,
            )


async def caller_from_access_token(services: Services, token: str) -> Caller:
    """A token naming a session is judged by its session; one naming none (the Node
    original's) must be traded for a current one at refresh first."""
    claims = access_claims(services, token)
    if not isinstance(claims.get("sid"), str):
        raise ServiceError(Code.INVALID_TOKEN, "Sign in again to get a current token")
    async with services.pool.acquire() as conn:
        row = await services.store.caller_by_session(conn, claims["sid"], str(claims["sub"]))
    if row is None:
        raise ServiceError(Code.TOKEN_REVOKED, "The token is no longer valid")
    note_user(row["uid"])  # the request's log line names its caller
    return Caller(row, row["session_id"])


async def caller_from_session_token(services: Services, session_token: str) -> Caller:
    async with services.pool.acquire() as conn:
        row = await services.store.session_user_by_token(conn, hash_session_token(session_token))
    if row is None:
        raise ServiceError(Code.SESSION_ENDED, "The session has ended; sign in again")
    note_user(row["uid"])
    return Caller(row, row["session_id"])


async def sign_out(
    services: Services,
    client: ClientInfo,
    caller: Caller,
    scope: Literal["local", "global", "others"],
) -> None:
    """local: this session; others: every session but this one; global: all of them, and
    every sessionless token."""
    user_id = caller.user["id"]
    async with services.pool.acquire() as conn, conn.transaction():
        await record(services, conn, Event.SIGNED_OUT, user_id, client, scope=scope)
        if scope == "others":
            if caller.session_id is None:
                raise ServiceError(Code.SESSION_ENDED, "This request names no session")
            await services.store.revoke_sessions(conn, user_id, keep=caller.session_id)
        elif scope == "global":
            # The user row first, then the sessions: the order change_password locks them in.
            await services.store.bump_token_count(conn, user_id)  # sessionless tokens die too
            await services.store.revoke_sessions(conn, user_id)
        elif caller.session_id is None or not await services.store.revoke_session(
            conn, user_id, caller.session_id
        ):
            raise ServiceError(Code.SESSION_ENDED, "This session has already ended")


async def list_sessions(services: Services, caller: Caller) -> list[Row]:
    async with services.pool.acquire() as conn:
        return await services.store.list_sessions(conn, caller.user["id"])


async def end_session(
    services: Services, client: ClientInfo, caller: Caller, session_id: str
) -> None:
    async with services.pool.acquire() as conn, conn.transaction():
        if not await services.store.revoke_session(conn, caller.user["id"], session_id):
            raise ServiceError(Code.SESSION_NOT_FOUND, "No live session of yours has that id")
        await record(
            services, conn, Event.SESSION_ENDED, caller.user["id"], client, session_id=session_id
        )
