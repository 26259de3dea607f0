"""Checking a login and password, with limits, and equal work for unknown users."""

from __future__ import annotations

from ..errors import Code, ServiceError
from ..services import Services
from ..store import Row
from .audit import Event, record
from .context import ClientInfo

WRONG = "The username or password is wrong"


async def verify_password(
    services: Services,
    client: ClientInfo,
    action: str,
    login: str,
    password: str,
    *,
    by_email: bool,
) -> Row:
    """The account if the password matches; invalid_credentials otherwise, the same whether or
    not it exists.

    The attempt is counted against the account before bcrypt runs and given back on success,
    keyed by the account's id when it exists, so its username and email share one budget.
    """
    store, limiter = services.store, services.limiter
    async with services.pool.acquire() as conn:
        await limiter.hit_address(conn, action, client.address)
        user = await (store.user_by_login if by_email else store.user_by_username)(conn, login)
        account = f"id:{user['id']}" if user is not None else f"login:{login}"
        await limiter.hit_account(conn, "password", account)
    ok, new_hash = await services.hasher.verify(password, user["password"] if user else None)
    if not ok or user is None:
        async with services.pool.acquire() as conn:  # never the login tried: it may be a password
            user_id = user["id"] if user is not None else None
            await record(services, conn, Event.SIGN_IN_FAILED, user_id, client, action=action)
        raise ServiceError(Code.INVALID_CREDENTIALS, WRONG)
    async with services.pool.acquire() as conn:
        await limiter.forgive_account(conn, "password", account)
        if new_hash is not None:
            await store.rehash_password(conn, user["id"], user["password"], new_hash)
    return user
