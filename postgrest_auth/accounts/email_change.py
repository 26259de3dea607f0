"""A new email address for an account; the old address is told."""

from __future__ import annotations

import asyncpg

from ..services import Services
from .audit import Event, record
from .context import ClientInfo
from .credentials import verify_password
from .signup import taken


async def change_email(
    services: Services, client: ClientInfo, username: str, password: str, email: str
) -> None:
    user = await verify_password(
        services, client, "change_email", username, password, by_email=False
    )
    try:
        async with services.pool.acquire() as conn, conn.transaction():
            updated = await services.store.set_email(conn, user["id"], email)
            old, new = user["email"], updated["email"]
            await record(services, conn, Event.EMAIL_CHANGED, user["id"], client)
            if old and old != new:
                await services.outbox.enqueue(
                    conn,
                    "email_changed",
                    old,
                    username=user["username"],
                    old_email=old,
                    new_email=new,
                )
    except asyncpg.UniqueViolationError as exc:
        raise taken(exc) from exc
