"""Mailed one-time secrets: a link token and a 6-digit code, both single-use, both stored only
as hashes, expiring after `email.otp_exp`. A newer one of a kind supersedes the account's older
one (the store keeps one row per account and kind)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from ..config import Settings
from ..errors import Code, ServiceError
from ..mail.outbox import ExpiringLink
from ..services import Services
from ..store import Connection, Row
from .links import Challenge, VerifyLink, verify_url

# GoTrue's names for what a mailed secret does when verified.
Kind = Literal["signup", "magiclink", "recovery", "email_change", "invite"]

# The mail that carries each kind.
TEMPLATES: dict[str, str] = {
    "signup": "confirm_signup",
    "magiclink": "magic_link",
    "recovery": "recovery",
    "email_change": "confirm_email_change",
    "invite": "invite",
}

# GoTrue's words, for a wrong, spent, superseded or expired secret alike: a refusal must not
# tell which, nor whether the account exists.
INVALID = "Token has expired or is invalid"


@dataclass(frozen=True)
class Secret:
    """What the mail carries: the link's token (its `token_hash` parameter) and the code."""

    token: str
    code: str


def refused() -> ServiceError:
    return ServiceError(Code.OTP_EXPIRED, INVALID)


def link_digest(token: str) -> bytes:
    """The link token as stored: 256 random bits need no key, SHA-256 is enough."""
    return hashlib.sha256(token.encode()).digest()


def code_digest(services: Services, kind: str, user_uid: Any, code: str) -> bytes:
    """The code as stored: keyed (see TokenIssuer.code_digest) and bound to its account and
    kind, so one code never stands for another account's."""
    return services.tokens.code_digest(f"{kind}:{user_uid}:{code}")


async def issue(
    services: Services,
    conn: Connection,
    kind: Kind,
    user: Row,
    sent_to: str,
    challenge: Challenge | None = None,
) -> Secret:
    """A new secret of `kind` for `user`, replacing any older one, in conn's transaction."""
    secret = Secret(token=secrets.token_urlsafe(32), code=f"{secrets.randbelow(10**6):06d}")
    await services.store.save_one_time_token(
        conn,
        kind,
        user["id"],
        sent_to,
        link_digest(secret.token),
        code_digest(services, kind, user["uid"], secret.code),
        services.settings.email.otp_exp,
        challenge and challenge.code_challenge,
        challenge and challenge.method,
    )
    return secret


async def count_mail(
    services: Services, conn: Connection, kind: Kind, address: str, user_id: int | None
) -> None:
    """One more mail of `kind`, against the address's budget and the account's (each kind has
    its own): refused with 429 email_rate_limited when either is spent."""
    await services.limiter.hit_mail(conn, kind, address)
    if user_id is not None:
        await services.limiter.hit_mail(conn, kind, f"id:{user_id}")


async def account_may_get_mail(
    services: Services, conn: Connection, kind: Kind, user_id: int
) -> bool:
    """For work run after the answer went out: a spent account budget sends nothing, quietly
    (the answer, the same for every address, has already been given)."""
    try:
        await services.limiter.hit_mail(conn, kind, f"id:{user_id}")
    except ServiceError:
        return False
    return True


async def mail_secret(
    services: Services,
    conn: Connection,
    kind: Kind,
    user: Row,
    to: str,
    link: VerifyLink,
    **context: str,
) -> None:
    """Issue a secret of `kind` for `user` and queue its mail to `to` (link and code), in
    conn's transaction: a rolled-back request mails nothing and leaves the older secret."""
    secret = await issue(services, conn, kind, user, to, link.challenge)
    settings = services.settings
    values, expiring = mailed(settings, kind, user, link, secret)
    await services.outbox.enqueue(
        conn,
        TEMPLATES[kind],
        to,
        expiring,
        username=user["username"] or to,
        email=to,
        type=kind,
        minutes=str(max(1, settings.email.otp_exp // 60)),
        **values,
        **context,
    )


def mailed(
    settings: Settings, kind: Kind, user: Row, link: VerifyLink, secret: Secret
) -> tuple[dict[str, str], ExpiringLink]:
    """The template values that carry the secret (link and code), and the outbox's record of
    when it dies and how to issue it again: one recipe for the first mail and for one whose
    secret died in the queue (mail.relink)."""
    challenge = link.challenge
    return {
        "confirmation_url": verify_url(settings, link, secret.token, kind),
        "token": secret.code,
        "token_hash": secret.token,
    }, ExpiringLink(
        kind=kind,
        user_id=user["id"],
        lifetime=settings.email.otp_exp,
        current=link_digest(secret.token).hex(),
        path=link.path,
        redirect_to=link.redirect_to,
        code_challenge=challenge and challenge.code_challenge,
        code_challenge_method=challenge and challenge.method,
    )
