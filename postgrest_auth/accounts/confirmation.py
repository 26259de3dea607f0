"""Confirming an address (`email.confirm`): until its owner opens the mailed link or enters the
code, a new account gets no session and password sign-in is refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import Code, ServiceError
from ..services import Services
from ..store import Connection, Row
from .audit import Event, record
from .context import ClientInfo
from .links import ORIGINAL, VerifyLink
from .one_time_tokens import account_may_get_mail, mail_secret
from .recovery import FollowUp

ResendType = Literal["signup", "email_change"]


@dataclass(frozen=True)
class AwaitingConfirmation:
    """A new account whose address must be confirmed before it gets a session."""

    user: Row


def must_confirm(services: Services, user: Row) -> bool:
    """An address that is not proven yet while confirmation is required. An account without
    an address has nothing to confirm; adopted accounts count as confirmed (sql/006)."""
    return (
        services.settings.email.confirm
        and user["email"] is not None
        and user["email_confirmed_at"] is None
    )


def refuse_unconfirmed(services: Services, user: Row) -> None:
    """Call only once the password has been verified: before, the refusal would tell anyone
    which addresses have accounts."""
    if must_confirm(services, user):
        raise ServiceError(
            Code.EMAIL_NOT_CONFIRMED,
            "Confirm your email address first: open the link or enter the code mailed to it",
        )


async def send_confirmation(
    services: Services, conn: Connection, client: ClientInfo, user: Row, link: VerifyLink
) -> None:
    """Mail the sign-up link and code to the new account's address, in conn's transaction.

    Not counted against the address's budget: the address is new to the table (it is unique),
    so this is its one sign-up mail, and resends spent by others must not bar its owner from
    signing up."""
    await mail_secret(services, conn, "signup", user, user["email"], link)
    await record(services, conn, Event.OTP_REQUESTED, user["id"], client, kind="signup")


async def resend(
    services: Services,
    client: ClientInfo,
    kind: ResendType,
    email: str,
    link: VerifyLink = ORIGINAL,
) -> FollowUp:
    """Mail the sign-up confirmation, or the pending address change's, again: a new link and
    code that supersede the old ones. The same answer for every address; the lookup and the
    mail run after it (see accounts.recovery)."""
    async with services.pool.acquire() as conn:
        await services.limiter.hit_address(conn, "resend", client.address)
        await services.limiter.hit_mail(conn, kind, email)

    async def send() -> None:
        async with services.pool.acquire() as conn, conn.transaction():
            if kind == "signup":
                user = await services.store.user_by_email(conn, email)
                to = user["email"] if user and user["email_confirmed_at"] is None else None
            else:  # found by its current address or the one it waits to move to
                user = await services.store.user_by_email_or_new_email(conn, email)
                to = user["new_email"] if user else None
            if user is None or to is None:
                return
            if not await account_may_get_mail(services, conn, kind, user["id"]):
                return
            extra = {"old_email": user["email"] or "", "new_email": to}
            await mail_secret(
                services, conn, kind, user, to, link, **(extra if kind == "email_change" else {})
            )
            await record(services, conn, Event.OTP_REQUESTED, user["id"], client, kind=kind)

    return send
