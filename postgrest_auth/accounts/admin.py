"""What an operator does to accounts (GoTrue's admin API, for `roles.service` keys): list,
create, change, ban and delete them, hand out links without mail, and invite by mail. The same
rules as everywhere else: metadata is merged and bounded, a new password or a ban ends every
session, every change leaves an audit event."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg

from ..errors import Code, ServiceError, field_error, invalid
from ..services import Services
from ..store import Connection, Row
from ..validation import password_problems, refuse_if
from .audit import Event, record
from .context import ClientInfo
from .deletion import remove_account
from .links import VerifyLink, verify_url
from .one_time_tokens import Kind, issue, mail_secret
from .profile import checked_changes, merge_metadata
from .signup import email_taken, refuse_usernameless_sign_up

BY = "admin_api"
MAX_PER_PAGE = 1000
# Go's duration syntax (GoTrue's ban_duration): "24h", "1h30m", "90s", "1.5h".
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")  # longest units first
UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}

LinkType = Literal["signup", "magiclink", "recovery", "invite"]


@dataclass(frozen=True)
class Changes:
    """What an operator may change of an account; None leaves a field as it is."""

    email: str | None = None
    password: str | None = None
    email_confirm: bool | None = None
    user_metadata: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None
    ban_duration: str | None = None


@dataclass(frozen=True)
class GeneratedLink:
    """A link and code an operator's own mailer sends (GoTrue's generate_link)."""

    user: Row
    action_link: str
    email_otp: str
    hashed_token: str
    verification_type: str
    redirect_to: str | None


def not_found() -> ServiceError:
    return ServiceError(Code.USER_NOT_FOUND, "User not found")


def ban_until(duration: str) -> datetime | None:
    """When a ban of `duration` ends; None for "none" or a zero length, which lift the ban
    (as GoTrue's Ban(0) does; Go also takes a bare "0")."""
    if duration in ("none", "0"):
        return None
    parts = DURATION_PART.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise invalid([field_error("ban_duration", 'must be like "24h", "1h30m" or "none"')])
    seconds = sum(float(number) * UNIT_SECONDS[unit] for number, unit in parts)
    return datetime.now(UTC) + timedelta(seconds=seconds) if seconds else None


async def user_by_id(services: Services, user_uid: str) -> Row:
    try:
        uid = str(uuid.UUID(user_uid))
    except ValueError:
        raise not_found() from None
    async with services.pool.acquire() as conn:
        user = await services.store.user_by_uid(conn, uid)
    if user is None:
        raise not_found()
    return user


async def list_users(services: Services, page: int, per_page: int) -> tuple[list[Row], int]:
    # an offset past PostgreSQL's bigint is an error there, not an empty page
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE or (page - 1) * per_page >= 2**63:
        raise invalid([field_error("per_page", f"page from 1, per_page from 1 to {MAX_PER_PAGE}")])
    async with services.pool.acquire() as conn:
        return await services.store.list_users(conn, per_page, (page - 1) * per_page)


async def create_user(services: Services, client: ClientInfo, email: str, changes: Changes) -> Row:
    refuse_usernameless_sign_up(services.settings)
    if changes.password is not None:
        refuse_if(password_problems(services.settings, "password", changes.password))
    user_metadata = checked_changes("user_metadata", changes.user_metadata or {})
    password_hash = (
        None if changes.password is None else await services.hasher.hash(changes.password)
    )
    try:
        async with services.pool.acquire() as conn, conn.transaction():
            user = await services.store.admin_insert_user(
                conn, email, password_hash, user_metadata, bool(changes.email_confirm)
            )
            await record(services, conn, Event.SIGNED_UP, user["id"], client, by=BY)
            return await _apply(
                services,
                conn,
                client,
                user,
                Changes(app_metadata=changes.app_metadata, ban_duration=changes.ban_duration),
            )
    except asyncpg.UniqueViolationError as exc:
        raise email_taken() from exc


async def update_user(
    services: Services, client: ClientInfo, user_uid: str, changes: Changes
) -> Row:
    user = await user_by_id(services, user_uid)
    if changes.password is not None:
        refuse_if(password_problems(services.settings, "password", changes.password))
    password_hash = (
        None if changes.password is None else await services.hasher.hash(changes.password)
    )
    try:
        async with services.pool.acquire() as conn, conn.transaction():
            if changes.email is not None and changes.email != user["email"]:
                user = await services.store.set_email(conn, user["id"], changes.email)
                await record(services, conn, Event.EMAIL_CHANGED, user["id"], client, by=BY)
            if password_hash is not None:
                updated = await services.store.set_password(
                    conn, user["id"], password_hash, user["token_count"]
                )
                if updated is None:
                    raise ServiceError(Code.VALIDATION_FAILED, "The account changed; try again")
                user = updated
                await services.store.revoke_sessions(conn, user["id"])
                await record(services, conn, Event.PASSWORD_CHANGED, user["id"], client, by=BY)
            return await _apply(services, conn, client, user, changes)
    except asyncpg.UniqueViolationError as exc:
        raise email_taken() from exc


async def _apply(
    services: Services, conn: Connection, client: ClientInfo, user: Row, changes: Changes
) -> Row:
    """What creating and changing share: confirmation, metadata (merged), the ban."""
    store = services.store
    if changes.email_confirm and user["email_confirmed_at"] is None:
        user = await store.confirm_current_email(conn, user["id"])
        await record(services, conn, Event.EMAIL_CONFIRMED, user["id"], client, by=BY)
    for column, given in (
        ("user_metadata", changes.user_metadata),
        ("app_metadata", changes.app_metadata),
    ):
        if given is not None:
            checked = checked_changes(column, given)
            user = await merge_metadata(services, conn, client, user["id"], column, checked, by=BY)
    if changes.ban_duration is not None:
        until = ban_until(changes.ban_duration)
        user = await store.set_banned_until(conn, user["id"], until)
        if until is not None:  # its tokens die at PostgREST at once
            await store.revoke_sessions(conn, user["id"])
        await record(
            services,
            conn,
            Event.BAN_CHANGED,
            user["id"],
            client,
            by=BY,
            until=until.isoformat() if until else None,
        )
    return user


async def delete_user(services: Services, client: ClientInfo, user_uid: str) -> None:
    user = await user_by_id(services, user_uid)
    async with services.pool.acquire() as conn, conn.transaction():
        await remove_account(services, conn, client, user["id"], by=BY)


async def _user_for_link(
    services: Services,
    conn: Connection,
    client: ClientInfo,
    kind: LinkType,
    email: str,
    password: str | None,
    data: dict[str, Any],
) -> Row:
    """The account a link is for; sign-up and invitation links make it when it is new."""
    user = await services.store.user_by_email(conn, email)
    if user is not None:
        if kind in ("signup", "invite") and user["email_confirmed_at"] is not None:
            raise email_taken()
        return user
    if kind in ("magiclink", "recovery"):
        raise not_found()
    refuse_usernameless_sign_up(services.settings)
    password_hash = None if password is None else await services.hasher.hash(password)
    user = await services.store.admin_insert_user(conn, email, password_hash, data, False)
    await record(services, conn, Event.SIGNED_UP, user["id"], client, by=BY, via=kind)
    return user


async def generate_link(
    services: Services,
    client: ClientInfo,
    kind: LinkType,
    email: str,
    password: str | None,
    data: dict[str, Any] | None,
    link: VerifyLink,
) -> GeneratedLink:
    """A link and code of `kind` for the operator's own mailer: nothing is mailed here."""
    if kind == "signup" and password is None:
        raise invalid([field_error("password", "a signup link needs the account's password")])
    if password is not None:
        refuse_if(password_problems(services.settings, "password", password))
    metadata = checked_changes("data", data or {})
    try:
        async with services.pool.acquire() as conn, conn.transaction():
            user = await _user_for_link(services, conn, client, kind, email, password, metadata)
            secret = await issue(services, conn, kind, user, user["email"], link.challenge)
            await record(services, conn, Event.OTP_REQUESTED, user["id"], client, kind=kind, by=BY)
    except asyncpg.UniqueViolationError as exc:
        raise email_taken() from exc
    return GeneratedLink(
        user=user,
        action_link=verify_url(services.settings, link, secret.token, kind),
        email_otp=secret.code,
        hashed_token=secret.token,
        verification_type=kind,
        redirect_to=link.redirect_to,
    )


async def invite(
    services: Services,
    client: ClientInfo,
    email: str,
    data: dict[str, Any] | None,
    link: VerifyLink,
) -> Row:
    """An account without a password for `email`, and a mail with a link and a code: verified,
    they sign the invitee in, who then sets a password."""
    metadata = checked_changes("data", data or {})
    kind: Kind = "invite"
    try:
        async with services.pool.acquire() as conn, conn.transaction():
            user = await _user_for_link(services, conn, client, "invite", email, None, metadata)
            await mail_secret(services, conn, kind, user, user["email"], link)
            await record(services, conn, Event.OTP_REQUESTED, user["id"], client, kind=kind, by=BY)
    except asyncpg.UniqueViolationError as exc:
        raise email_taken() from exc
    return user
