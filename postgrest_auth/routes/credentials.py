"""Checking a username (or email) and password, with limits and equal work for unknown users."""

from __future__ import annotations

from fastapi import Request

from ..client import client_address
from ..errors import unauthorized
from ..services import Services
from ..store import Row

WRONG = "The username or password is wrong"


async def verify_password_login(
    services: Services, request: Request, action: str, login: str, password: str, *, by_email: bool
) -> Row:
    """The account if the password matches; 401 otherwise, the same whether or not it exists.

    The attempt is counted against the account before bcrypt runs and given back on success,
    keyed by the account's id when it exists, so its username and email share one budget.
    """
    store, limiter = services.store, services.limiter
    address = client_address(request, services.settings.http)
    async with services.pool.acquire() as conn:
        await limiter.hit_address(conn, action, address)
        user = await (store.user_by_login if by_email else store.user_by_username)(conn, login)
        account = f"id:{user['id']}" if user is not None else f"login:{login}"
        await limiter.hit_account(conn, "password", account)
    ok, new_hash = await services.hasher.verify(password, user["password"] if user else None)
    if not ok or user is None:
        raise unauthorized("invalid_credentials", WRONG)
    async with services.pool.acquire() as conn:
        await limiter.forgive_account(conn, "password", account)
        if new_hash is not None:
            await store.rehash_password(conn, user["id"], user["password"], new_hash)
    return user
