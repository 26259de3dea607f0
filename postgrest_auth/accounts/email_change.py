"""A new email address for an account; the old address is told.

With `email.confirm` the change waits for the new address to prove itself: it is kept in
`new_email`, the new address gets a link and a code, and only verifying one of them moves the
account (complete_email_change). The old address is told when the change is asked for and when
it is made.
"""

from __future__ import annotations

import asyncpg

from ..services import Services
from ..store import Connection, Row
from .audit import Event, record
from .context import ClientInfo
from .credentials import verify_password
from .links import ORIGINAL, VerifyLink
from .one_time_tokens import count_mail, mail_secret, refused
from .signup import email_taken, taken


async def change_email(
    services: Services,
    client: ClientInfo,
    username: str,
    password: str,
    email: str,
    *,
    link: VerifyLink = ORIGINAL,
) -> bool:
    """True when the change waits for the new address to confirm it; False when it is made."""
    user = await verify_password(
        services, client, "change_email", username, password, by_email=False
    )
    if services.settings.email.confirm and email != user["email"]:
        await request_email_change(services, client, user, email, link)
        return True
    await _set_email(services, client, user, email)
    return False


async def change_own_email(
    services: Services, client: ClientInfo, user: Row, email: str, link: VerifyLink
) -> Row:
    """The signed-in user asks for a new address (GoTrue's `PUT /user {email}`, through
    own_account, which checks the second factor); the account as it is afterwards
    (`new_email` set while the change waits for confirmation)."""
    if email == user["email"]:
        return user
    if services.settings.email.confirm:
        await request_email_change(services, client, user, email, link)
        async with services.pool.acquire() as conn:
            return await services.store.user_by_id(conn, user["id"])
    return await _set_email(services, client, user, email)


async def _set_email(services: Services, client: ClientInfo, user: Row, email: str) -> Row:
    try:
        async with services.pool.acquire() as conn, conn.transaction():
            updated = await services.store.set_email(conn, user["id"], email)
            await record(services, conn, Event.EMAIL_CHANGED, user["id"], client)
            await _tell_old_address(services, conn, "email_changed", user, updated["email"])
    except asyncpg.UniqueViolationError as exc:
        raise taken(exc) from exc
    return updated


async def request_email_change(
    services: Services, client: ClientInfo, user: Row, email: str, link: VerifyLink
) -> None:
    """Keep the new address waiting and mail it a link and a code (superseding any earlier
    request's); tell the old address that a change was asked for."""
    async with services.pool.acquire() as conn, conn.transaction():
        if await services.store.user_by_email(conn, email) is not None:
            raise email_taken()
        await count_mail(services, conn, "email_change", email, user["id"])
        updated = await services.store.set_new_email(conn, user["id"], email)
        old = user["email"]
        await mail_secret(
            services,
            conn,
            "email_change",
            updated,
            email,
            link,
            old_email=old or "",
            new_email=email,
        )
        await record(services, conn, Event.EMAIL_CHANGE_REQUESTED, user["id"], client)
        await _tell_old_address(services, conn, "email_change_requested", user, email)


async def complete_email_change(
    services: Services, conn: Connection, client: ClientInfo, spent: Row
) -> Row:
    """The waiting change takes effect, in conn's transaction, once a link or code mailed to
    the new address (`spent["sent_to"]`) is verified; the old address is told. Raises
    asyncpg.UniqueViolationError when another account took the address meanwhile."""
    updated = await services.store.apply_new_email(conn, spent["id"], spent["sent_to"])
    if updated is None:  # the account no longer waits for this address
        raise refused()
    await record(services, conn, Event.EMAIL_CHANGED, spent["id"], client, confirmed=True)
    await _tell_old_address(services, conn, "email_changed", spent, updated["email"])
    return updated


async def _tell_old_address(
    services: Services, conn: Connection, kind: str, user: Row, new_email: str
) -> None:
    """The address the account had hears of a change to another one, in conn's transaction."""
    old = user["email"]
    if old and old != new_email:
        await services.outbox.enqueue(
            conn, kind, old, username=user["username"], old_email=old, new_email=new_email
        )
