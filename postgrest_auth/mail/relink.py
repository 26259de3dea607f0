"""A mail whose secret died in the queue goes out with a new one, or not at all.

A reset link or a one-time link lives an hour by default; an SMTP outage under the default
backoff, or `mail retry` days later, would otherwise deliver a dead one. When the worker claims
such a mail (the outbox's `link_expires_at` has passed) it issues a new secret of the same kind
for the same account, as the request that queued it did (accounts.one_time_tokens.mailed,
accounts.recovery.reset_mail), renders the mail again and sends that. The old secret stays dead:
a one-time token's row is replaced, a reset token is past its `exp`.

A new secret must end nothing the account still relies on, so the mail is not sent (failed for
good, with the reason, erased) when a newer mail of its kind replaced its secret, its secret
was used or is gone (the janitor deletes a token's row a day after its use or expiry, while
failed mail keeps its link for days: a new secret would revive a spent sign-in), the address is
confirmed already (signup, invite), the password changed since (reset), the address it went to
is no longer the account's, or the account is gone.

The latest token's row is read `for update` in the transaction that replaces it, so a request
committing a newer secret meanwhile is seen (and wins) rather than overwritten.

Imported by the lifespan only, never by the `mail` package: it builds on the account
operations, which import the package.
"""

from __future__ import annotations

from typing import cast

from ..accounts.links import Challenge, VerifyLink
from ..accounts.one_time_tokens import Kind, issue, mailed
from ..accounts.recovery import reset_mail
from ..services import Services
from ..store import Connection, Row
from .outbox import ExpiringLink
from .templates import RenderedMail


async def renew(services: Services, mail: Row) -> RenderedMail | None:
    """The mail rendered around a new secret, saved in its outbox row; None when it must not
    be sent (then it is marked failed for good with the reason)."""
    store = services.store
    async with services.pool.acquire() as conn, conn.transaction():
        if mail["link"] is None:  # queued before links were recorded: nothing to issue again
            await store.drop_mail(conn, mail["id"], "not sent: its link expired")
            return None
        expiring, context = ExpiringLink.load(mail["link"])
        user = await store.user_by_id(conn, expiring.user_id)
        moot = await _moot(services, conn, expiring, user, mail["recipient"])
        if moot is not None or user is None:
            await store.drop_mail(conn, mail["id"], f"not sent: its link expired and {moot}")
            return None
        if expiring.kind == "reset":
            values, renewed = reset_mail(services, user)
        else:
            challenge = (
                Challenge(expiring.code_challenge, expiring.code_challenge_method or "s256")
                if expiring.code_challenge
                else None
            )
            link = VerifyLink(expiring.path or "/verify", expiring.redirect_to, challenge)
            kind = cast(Kind, expiring.kind)
            secret = await issue(services, conn, kind, user, mail["recipient"], challenge)
            values, renewed = mailed(services.settings, kind, user, link, secret)
        context = {**context, **values}
        rendered = services.outbox.render(mail["kind"], context)
        await store.renew_mail(
            conn,
            mail["id"],
            rendered.subject,
            rendered.text,
            rendered.html,
            renewed.lifetime,
            renewed.stored(context),
        )
    return rendered


async def _moot(
    services: Services, conn: Connection, expiring: ExpiringLink, user: Row | None, to: str
) -> str | None:
    """Why a new secret must not be issued for this mail, or None."""
    if user is None:
        return "the account is gone"
    address = user["new_email"] if expiring.kind == "email_change" else user["email"]
    if address != to.lower():
        return "the account no longer has this address"
    if expiring.kind == "reset":
        if user["token_count"] != expiring.current:
            return "the password changed since"
        return None
    if expiring.kind in ("signup", "invite") and user["email_confirmed_at"] is not None:
        return "the address is confirmed already"
    # Locked until this transaction ends: issue() replaces exactly the row checked here.
    latest = await services.store.latest_one_time_token(conn, user["id"], expiring.kind)
    if latest is None:  # used or expired a day ago and deleted by the janitor
        return "its secret is gone"
    if latest["token_hash"].hex() != expiring.current:
        return "a newer mail of its kind replaced it"
    if latest["used_at"] is not None:
        return "its secret was used"
    return None
