"""Forgotten password or username: the same answer whether or not the account exists.

Each operation counts the attempt (which may refuse it) and hands back the work to do: the
lookup and the mail, which the caller runs after it has answered, so a known and an unknown
account take the same time to answer. The request changes nothing, so nothing rolls back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..mail.outbox import ExpiringLink
from ..services import Services
from ..store import Row
from .audit import Event, record
from .context import ClientInfo

FollowUp = Callable[[], Awaitable[None]]


def reset_link(template: str | None, token: str, username: str) -> str:
    """The configured URL with `{token}` and `{username}` filled in, or the raw token."""
    if not template:
        return token
    return template.replace("{token}", token).replace("{username}", username)


def reset_mail(services: Services, user: Row) -> tuple[dict[str, str], ExpiringLink]:
    """A new reset token's template values, and the outbox's record of when it dies and how
    to issue another: one recipe for the first mail and for one whose token died in the queue
    (mail.relink). Issuing one ends no other: each dies with the password or the address."""
    token = services.tokens.reset_token(dict(user))
    settings = services.settings
    return {
        "reset_link": reset_link(settings.email.reset_url, token, user["username"]),
        "reset_token": token,
    }, ExpiringLink(
        kind="reset",
        user_id=user["id"],
        lifetime=settings.email.reset_token_exp,
        current=user["token_count"],
    )


async def _count_attempt(services: Services, client: ClientInfo, action: str, account: str) -> None:
    """Per address and per account, known or not: a 429 says nothing about existence."""
    async with services.pool.acquire() as conn:
        await services.limiter.hit_address(conn, "recovery", client.address)
        await services.limiter.hit_account(conn, action, account)


async def forgot_password(services: Services, client: ClientInfo, username: str) -> FollowUp:
    """Mail a reset token (valid `email.reset_token_exp`) to the account's address."""
    await _count_attempt(services, client, "forgot_password", username)
    settings = services.settings

    async def send() -> None:
        async with services.pool.acquire() as conn, conn.transaction():
            user = await services.store.user_by_username(conn, username)
            if user is None or not user["email"]:
                return
            values, expiring = reset_mail(services, user)
            await record(services, conn, Event.RESET_REQUESTED, user["id"], client)
            await services.outbox.enqueue(
                conn,
                "reset_password",
                user["email"],
                expiring,
                username=user["username"],
                reset_minutes=str(settings.email.reset_token_exp // 60),
                **values,
            )

    return send


async def forgot_username(services: Services, client: ClientInfo, email: str) -> FollowUp:
    """Mail the username to the address, if an account has it."""
    await _count_attempt(services, client, "forgot_username", email)

    async def send() -> None:
        async with services.pool.acquire() as conn, conn.transaction():
            user = await services.store.user_by_email(conn, email)
            if user is not None:
                await services.outbox.enqueue(
                    conn, "forgot_username", user["email"], username=user["username"]
                )

    return send
