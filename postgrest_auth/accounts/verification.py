"""Verifying a mailed secret, by its link (`token_hash`) or by its 6-digit code with the
address, for every kind: it is spent, does what its kind does, and signs the account in.

Every kind proves the mailbox, so the address counts as confirmed afterwards. A wrong, spent,
superseded or expired secret gets one answer (GoTrue's `otp_expired`) and changes nothing.
Codes are limited per address and per account, counted before they are checked: once the
budget is spent even the right code waits for the window to end. Links (256 random bits)
cannot be guessed, so guessing codes never locks a mailed link out.
"""

from __future__ import annotations

import hmac
from typing import Literal

import asyncpg

from ..services import Services
from ..store import Connection, Row
from .audit import Event, record
from .context import ClientInfo
from .email_change import complete_email_change
from .grants import Grant, start_session
from .links import Challenge
from .one_time_tokens import code_digest, link_digest, refused
from .pkce import AuthCode, issue_auth_code
from .signup import taken

# GoTrue's verify types; "email" is the code of a sign-in or sign-up mail.
EmailOtpType = Literal["signup", "invite", "magiclink", "recovery", "email_change", "email"]

KINDS_OF_TYPE: dict[str, tuple[str, ...]] = {
    "signup": ("signup",),
    "invite": ("invite",),
    "magiclink": ("magiclink",),
    "recovery": ("recovery",),
    "email_change": ("email_change",),
    "email": ("magiclink", "signup"),
}


async def verify_code(
    services: Services, client: ClientInfo, type_: EmailOtpType, email: str, code: str
) -> Grant:
    """The code mailed to `email` (for an address change: the new address or the current
    one). Every try counts, right or wrong, before the check; the right code gives it back."""
    kinds = KINDS_OF_TYPE[type_]
    store, limiter = services.store, services.limiter
    async with services.pool.acquire() as conn:
        await limiter.hit_address(conn, "verify", client.address)
        user = await store.user_by_email_or_new_email(conn, email)
        subjects = [email] + ([f"id:{user['id']}"] if user is not None else [])
        for subject in subjects:
            await limiter.hit_verify(conn, subject)
        candidates = await store.live_one_time_tokens_for_address(conn, list(kinds), email)
    match = None
    for row in candidates:  # every one compared, in constant time
        digest = code_digest(services, row["kind"], row["uid"], code)
        if hmac.compare_digest(row["code_hash"], digest) and match is None:
            match = row
    if match is None:
        async with services.pool.acquire() as conn:
            user_id = user["id"] if user is not None else None
            await record(services, conn, Event.OTP_FAILED, user_id, client, type=type_, via="code")
        raise refused()
    granted = await _redeem(services, client, match["id"], match["code_hash"], method="otp")
    assert isinstance(granted, Grant)  # a code is verified in the client, never a PKCE hop
    async with services.pool.acquire() as conn:
        for subject in subjects:
            await limiter.forgive_verify(conn, subject)
    return granted


async def verify_link(
    services: Services,
    client: ClientInfo,
    type_: EmailOtpType,
    token: str,
    *,
    opened_in_browser: bool = False,
) -> Grant | AuthCode:
    """The token of a mailed link (its `token_hash` parameter; GoTrue's `token` in GET).

    A link opened in the browser whose mail a PKCE client asked for yields an authorization
    code instead of a session: only that client can exchange it."""
    digest = link_digest(token)
    async with services.pool.acquire() as conn:
        await services.limiter.hit_address(conn, "verify", client.address)
        row = await services.store.live_one_time_token_by_hash(conn, digest)
        if row is None or row["kind"] not in KINDS_OF_TYPE[type_]:
            user_id = row["user_id"] if row is not None else None
            await record(services, conn, Event.OTP_FAILED, user_id, client, type=type_, via="link")
            raise refused()
    return await _redeem(
        services, client, row["id"], digest, method="magiclink", pkce=opened_in_browser
    )


# Kinds whose verification signs in the mailbox's owner, who need not be who signed up.
MAILBOX_OWNER_KINDS = ("magiclink", "recovery", "invite")


async def _hand_to_mailbox_owner(
    services: Services, conn: Connection, client: ClientInfo, user: Row
) -> Row:
    """Whoever signed up with an address that was never proven may not be its owner: when the
    owner first proves it by a sign-in link or code, the password set without that proof goes
    and every earlier session ends, so a squatter keeps no way in."""
    if user["password"] is None:
        return user
    taken_back = await services.store.clear_unproven_password(conn, user["id"])
    await services.store.revoke_sessions(conn, user["id"])
    await record(services, conn, Event.PASSWORD_CHANGED, user["id"], client, reason="unproven")
    return taken_back


async def _redeem(
    services: Services,
    client: ClientInfo,
    token_id: int,
    secret_hash: bytes,
    method: str,
    pkce: bool = False,
) -> Grant | AuthCode:
    """Spend the token and do what its kind does, then start a session (or, for a PKCE-bound
    link opened in the browser, issue the code that starts one): all or nothing."""
    store = services.store
    try:
        async with services.pool.acquire() as conn, conn.transaction():
            spent = await store.spend_one_time_token(conn, token_id, secret_hash)
            if spent is None:  # another use won the race, or it expired meanwhile
                raise refused()
            kind = spent["kind"]
            if kind == "email_change":
                user = await complete_email_change(services, conn, client, spent)
            else:
                user = await store.confirm_email(conn, spent["id"], spent["sent_to"])
                if user is None:  # mailed to an address the account no longer has
                    raise refused()
                if spent["email_confirmed_at"] is None:
                    await record(services, conn, Event.EMAIL_CONFIRMED, user["id"], client)
                    if kind in MAILBOX_OWNER_KINDS:
                        user = await _hand_to_mailbox_owner(services, conn, client, user)
            if pkce and spent["code_challenge"] is not None:
                challenge = Challenge(spent["code_challenge"], spent["code_challenge_method"])
                return await issue_auth_code(services, conn, user, challenge, kind)
            await store.record_sign_in(conn, user["id"])
            await record(
                services, conn, Event.SIGNED_IN, user["id"], client, method=method, kind=kind
            )
            return await start_session(services, conn, user, client, method)
    except asyncpg.UniqueViolationError as exc:  # the new address was taken meanwhile
        raise taken(exc) from exc
