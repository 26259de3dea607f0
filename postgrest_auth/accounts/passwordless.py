"""Signing in by mail: a magic link and a 6-digit code (GoTrue's `/otp`), and account recovery
by the same means (`/recover`). The same answer for every address, known or not; the lookup,
any new account and the mail follow after the answer (see accounts.recovery)."""

from __future__ import annotations

from typing import Any

import asyncpg

from ..services import Services
from .audit import Event, record
from .context import ClientInfo
from .links import ORIGINAL, VerifyLink
from .one_time_tokens import account_may_get_mail, mail_secret
from .profile import checked_changes
from .recovery import FollowUp
from .signup import refuse_usernameless_sign_up


async def request_otp(
    services: Services,
    client: ClientInfo,
    email: str,
    *,
    create_user: bool = True,
    data: dict[str, Any] | None = None,
    link: VerifyLink = ORIGINAL,
) -> FollowUp:
    """Mail a sign-in link and code to the address. With `create_user`, an address without an
    account gets one (no username, no password); without, it gets nothing."""
    if create_user:
        refuse_usernameless_sign_up(services.settings)
    metadata = checked_changes("data", data or {})  # the new account's user_metadata
    async with services.pool.acquire() as conn:
        await services.limiter.hit_address(conn, "otp", client.address)
        await services.limiter.hit_mail(conn, "magiclink", email)

    async def send() -> None:
        try:
            async with services.pool.acquire() as conn, conn.transaction():
                user = await services.store.user_by_email(conn, email)
                if user is None:
                    if not create_user:
                        return
                    user = await services.store.insert_email_user(conn, email, metadata)
                    await record(services, conn, Event.SIGNED_UP, user["id"], client, method="otp")
                elif not await account_may_get_mail(services, conn, "magiclink", user["id"]):
                    return
                await mail_secret(services, conn, "magiclink", user, user["email"], link)
                await record(
                    services, conn, Event.OTP_REQUESTED, user["id"], client, kind="magiclink"
                )
        except asyncpg.UniqueViolationError:
            return  # a request for the same new address made the account and mailed it

    return send


async def request_recovery(
    services: Services, client: ClientInfo, email: str, link: VerifyLink = ORIGINAL
) -> FollowUp:
    """Mail a recovery link and code: verified, they sign the account in, so its owner can set
    a new password. Shares the recovery limits of forgot_password per client address."""
    async with services.pool.acquire() as conn:
        await services.limiter.hit_address(conn, "recovery", client.address)
        await services.limiter.hit_mail(conn, "recovery", email)

    async def send() -> None:
        async with services.pool.acquire() as conn, conn.transaction():
            user = await services.store.user_by_email(conn, email)
            if user is None or not await account_may_get_mail(
                services, conn, "recovery", user["id"]
            ):
                return
            await mail_secret(services, conn, "recovery", user, user["email"], link)
            await record(services, conn, Event.OTP_REQUESTED, user["id"], client, kind="recovery")

    return send
