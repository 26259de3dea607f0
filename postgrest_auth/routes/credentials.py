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
    """The account if the password matches; 401 otherwise, the same whether or not it exists."""
    store, limiter = services.store, services.limiter
    address = client_address(request, services.settings.http)
    async with services.pool.acquire() as conn:
        await limiter.hit_address(conn, action, address)
        await limiter.check_account(conn, "password", login)
        user = await (store.user_by_login if by_email else store.user_by_username)(conn, login)
    ok, new_hash = await services.hasher.verify(password, user["password"] if user else None)
    async with services.pool.acquire() as conn:
        if not ok or user is None:
            await limiter.hit_account(conn, "password", login)
            raise unauthorized("invalid_credentials", WRONG)
        if new_hash is not None:
            await store.rehash_password(conn, user["id"], user["password"], new_hash)
    return user
