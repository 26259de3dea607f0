"""Sign-up: the user, its compat-mode role, its first session and its welcome mail, at once."""

from __future__ import annotations

from typing import Any

import asyncpg

from ..config import Settings
from ..errors import Code, ServiceError, field_error, invalid
from ..services import Services
from ..validation import password_problems, refuse_if, username_problems
from .audit import Event, record
from .confirmation import AwaitingConfirmation, send_confirmation
from .context import ClientInfo
from .grants import Grant, start_session
from .links import ORIGINAL, VerifyLink
from .profile import checked_changes


def email_taken() -> ServiceError:
    return ServiceError(
        Code.EMAIL_TAKEN, "That email is already taken", [field_error("email", "is already taken")]
    )


def taken(exc: asyncpg.UniqueViolationError | asyncpg.DuplicateObjectError) -> ServiceError:
    """Which field a unique violation is about. Ours is <table>_email_uniq; a table adopted
    from the Node original may have <table>_email_key."""
    constraint = getattr(exc, "constraint_name", None) or ""
    if constraint.endswith(("_email_uniq", "_email_key")):
        return email_taken()
    return ServiceError(
        Code.USERNAME_TAKEN,
        "That username is already taken",
        [field_error("username", "is already taken")],
    )


def refuse_usernameless_sign_up(settings: Settings) -> None:
    """Compat mode names each account's database role after its username: an account made
    from an address alone (passwordless or GoTrue sign-up) would have none."""
    if settings.roles.per_user:
        raise ServiceError(
            Code.VALIDATION_FAILED,
            "roles.per_user is on: every account needs a username (its database role's name),"
            " so accounts cannot be made from an email address alone; sign up with a username",
        )


async def sign_up(
    services: Services,
    client: ClientInfo,
    username: str | None,
    password: str,
    email: str | None,
    *,
    data: dict[str, Any] | None = None,
    link: VerifyLink = ORIGINAL,
) -> Grant | AwaitingConfirmation:
    """With `email.confirm` and an address, the account waits for the address to be confirmed:
    no session, a mail with a link and a code instead of the welcome mail.

    The GoTrue API signs up by address alone (no `username`), with `data` as user_metadata."""
    settings = services.settings
    if username is None:
        refuse_usernameless_sign_up(settings)
        if email is None:
            raise invalid([field_error("email", "This field is required")])
    metadata = checked_changes("data", data or {})
    refuse_if(
        (username_problems(settings, username) if username is not None else [])
        + password_problems(settings, "password", password)
    )
    async with services.pool.acquire() as conn:
        await services.limiter.hit_address(conn, "signup", client.address)
    password_hash = await services.hasher.hash(password)
    try:
        async with services.pool.acquire() as conn, conn.transaction():
            user = await services.store.insert_user(conn, username, email, password_hash, metadata)
            if settings.roles.per_user:
                await services.store.create_user_role(conn, user["username_lowercase"])
            if user["email"] and settings.email.confirm:
                await record(services, conn, Event.SIGNED_UP, user["id"], client)
                await send_confirmation(services, conn, client, user, link)
                return AwaitingConfirmation(user)
            granted = await start_session(services, conn, user, client)
            await record(services, conn, Event.SIGNED_UP, user["id"], client)
            if user["email"]:
                await services.outbox.enqueue(
                    conn, "welcome", user["email"], username=user["username"] or user["email"]
                )
    except (asyncpg.UniqueViolationError, asyncpg.DuplicateObjectError) as exc:
        raise taken(exc) from exc
    except (
        asyncpg.ReservedNameError
    ) as exc:  # compat mode: "public", "none", "pg_…" cannot be roles
        raise ServiceError(
            Code.USERNAME_TAKEN,
            "That username is not available",
            [field_error("username", "is not available")],
        ) from exc
    except asyncpg.StringDataRightTruncationError as exc:  # a pattern wider than the column
        raise invalid([field_error("username", "is longer than the users table allows")]) from exc
    return granted
