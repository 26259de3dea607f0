"""Enrolling, challenging, verifying and removing TOTP factors (GoTrue's flow: enrol → the
app shows a QR code → challenge → verify with the app's code → the session is aal2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import asyncpg

from ..accounts import Caller
from ..accounts.audit import Event, record
from ..accounts.context import ClientInfo
from ..accounts.grants import Grant
from ..accounts.links import public_base
from ..errors import Code, ServiceError, field_error, invalid
from ..services import Services
from ..store import Connection, Row
from . import qr, totp
from .session_level import SECOND_FACTORS, TOTP, require_aal2, require_aal2_if_enrolled, step_up

MAX_FRIENDLY_NAME = 100


@dataclass(frozen=True)
class Enrollment:
    factor: Row
    secret: str
    uri: str
    qr_svg: str


def _enabled(services: Services) -> None:
    if not services.settings.mfa.enabled:
        raise ServiceError(Code.MFA_DISABLED, "MFA enroll is disabled for TOTP")


def _issuer(services: Services) -> str:
    """What the authenticator app labels the code with: mfa.issuer, else the site's host."""
    settings = services.settings
    if settings.mfa.issuer:
        return settings.mfa.issuer
    for url in (settings.gotrue.site_url, public_base(settings)):
        host = urlsplit(url).hostname if url else None
        if host:
            return host
    return settings.app_name


async def enroll(
    services: Services,
    client: ClientInfo,
    caller: Caller,
    friendly_name: str | None,
    issuer: str | None = None,
) -> Enrollment:
    """A new, unverified factor. Once the user has a verified one, only an aal2 session may
    add another (else a stolen password would be enough to add the thief's phone)."""
    _enabled(services)
    if friendly_name is not None and len(friendly_name) > MAX_FRIENDLY_NAME:
        raise invalid([field_error("friendly_name", f"at most {MAX_FRIENDLY_NAME} characters")])
    user = caller.user
    secret = totp.new_secret()
    account = user["email"] or user["username"] or str(user["uid"])
    uri = totp.provisioning_uri(secret, account, issuer or _issuer(services))
    async with services.pool.acquire() as conn, conn.transaction():
        await services.factors.lock_user(conn, user["id"])
        factors = await services.factors.factors_of(conn, user["id"])
        if friendly_name and any(f["friendly_name"] == friendly_name for f in factors):
            raise ServiceError(
                Code.MFA_FACTOR_NAME_CONFLICT,
                f"A factor with the friendly name {friendly_name!r} for this user already exists",
            )
        totps = [f for f in factors if f["factor_type"] == "totp"]
        if len(totps) >= services.settings.mfa.max_factors:
            raise ServiceError(
                Code.TOO_MANY_FACTORS, "Maximum number of factors reached, unenroll to continue"
            )
        if any(f["status"] == "verified" for f in factors):
            await require_aal2(services, conn, caller, "enroll a new factor")
        try:
            factor = await services.factors.insert_factor(
                conn, user["id"], friendly_name, "totp", secret
            )
        except asyncpg.UniqueViolationError as exc:
            raise ServiceError(
                Code.MFA_FACTOR_NAME_CONFLICT, "A factor with this friendly name already exists"
            ) from exc
        await record(services, conn, Event.FACTOR_ENROLLED, user["id"], client, factor=factor["id"])
    return Enrollment(factor, secret, uri, qr.svg(uri))


async def _own_factor(services: Services, conn: Connection, caller: Caller, factor_id: str) -> Row:
    factor = await services.factors.factor(conn, caller.user["id"], factor_id)
    if factor is None:
        raise ServiceError(Code.MFA_FACTOR_NOT_FOUND, "MFA factor not found")
    return factor


async def challenge(services: Services, client: ClientInfo, caller: Caller, factor_id: str) -> Row:
    """A challenge for the factor: `id` and `expires_at` (Unix seconds). Counted as the
    account's other attempts are, so challenges cannot pile up."""
    _enabled(services)
    async with services.pool.acquire() as conn:
        factor = await _own_factor(services, conn, caller, factor_id)
        if factor["factor_type"] != "totp":
            raise ServiceError(Code.MFA_FACTOR_NOT_FOUND, "Only a TOTP factor is challenged")
        await services.limiter.hit_account(conn, "mfa_challenge", str(caller.user["id"]))
        return await services.factors.create_challenge(
            conn, factor_id, client.address, services.settings.mfa.challenge_seconds
        )


async def verify(
    services: Services,
    client: ClientInfo,
    caller: Caller,
    factor_id: str,
    challenge_id: str,
    code: str,
) -> Grant:
    """The factor's code for the challenge: the factor becomes verified (at its first code)
    and the caller's session aal2, with new tokens. At a factor's first code the account's
    aal1 sessions end (opened before the factor, perhaps with a stolen password) and its
    unfinished enrolments go, as GoTrue does. Every code works once; five wrong codes per
    factor in five minutes (`mfa.failures`) and the factor waits. A factor enrolled before
    another was verified is still only verified from an aal2 session."""
    _enabled(services)
    limit = services.settings.mfa
    user_id = caller.user["id"]
    async with services.pool.acquire() as conn:
        factor = await _own_factor(services, conn, caller, factor_id)
        found = await services.factors.live_challenge(
            conn, factor_id, challenge_id, limit.challenge_seconds
        )
        if found is None:
            raise ServiceError(Code.MFA_FACTOR_NOT_FOUND, "MFA challenge not found for this factor")
        if not found["live"]:
            raise ServiceError(
                Code.MFA_CHALLENGE_EXPIRED,
                "MFA challenge has expired, verify against another challenge or create a new one",
            )
        await services.limiter.hit_factor(conn, factor_id, limit.failures)
        step = totp.matching_step(
            factor["secret"], code, datetime.now(UTC), factor["last_used_step"]
        )
        async with conn.transaction():
            if factor["status"] == "unverified":
                await services.factors.lock_user(conn, user_id)
                await require_aal2_if_enrolled(services, conn, caller, "verify another factor")
            if step is not None and await services.factors.accept_code(
                conn, factor_id, challenge_id, step, limit.challenge_seconds
            ):
                await services.limiter.forgive_factor(conn, factor_id)
                await record(
                    services, conn, Event.FACTOR_VERIFIED, user_id, client, factor=factor_id
                )
                granted = await step_up(services, conn, caller, TOTP)
                if factor["status"] == "unverified":
                    await services.factors.end_aal1_sessions(conn, user_id, granted.session_id)
                    await services.factors.delete_unverified_factors(conn, user_id)
                return granted
        await record(services, conn, Event.FACTOR_FAILED, user_id, client, factor=factor_id)
    raise ServiceError(Code.MFA_VERIFICATION_FAILED, "Invalid TOTP code entered")


async def unenroll(services: Services, client: ClientInfo, caller: Caller, factor_id: str) -> None:
    """A verified factor goes only from an aal2 session; the last verified TOTP factor takes
    the recovery codes with it (they stand in for it)."""
    user_id = caller.user["id"]
    async with services.pool.acquire() as conn, conn.transaction():
        factor = await _own_factor(services, conn, caller, factor_id)
        if factor["status"] == "verified":
            await require_aal2(services, conn, caller, "unenroll a verified factor")
        await services.factors.delete_factor(conn, user_id, factor_id)
        await _drop_orphan_recovery_codes(services, conn, user_id)
        await record(services, conn, Event.FACTOR_REMOVED, user_id, client, factor=factor_id)


def has_verified_totp(factors: list[Row]) -> bool:
    """Recovery codes stand in for a verified TOTP factor, and live only beside one."""
    return any(f["factor_type"] == "totp" and f["status"] == "verified" for f in factors)


async def _drop_orphan_recovery_codes(services: Services, conn: Connection, user_id: int) -> None:
    """Without a verified TOTP factor, the recovery codes go, and no session of the user
    stays aal2 on a factor it no longer has (GoTrue downgrades them too)."""
    if not has_verified_totp(await services.factors.factors_of(conn, user_id)):
        await services.factors.delete_recovery_factor(conn, user_id)
        await services.factors.downgrade_sessions(conn, user_id, list(SECOND_FACTORS))


async def remove_by_admin(
    services: Services, client: ClientInfo, user_id: int, factor_id: str | None = None
) -> list[Row]:
    """The operator's way out for a user who lost the authenticator and the recovery codes:
    one factor, or (None) all of them. The removed factors."""
    async with services.pool.acquire() as conn, conn.transaction():
        factors = await services.factors.factors_of(conn, user_id)
        chosen = [f for f in factors if factor_id is None or f["id"] == factor_id]
        if factor_id is not None and not chosen:
            raise ServiceError(Code.MFA_FACTOR_NOT_FOUND, "MFA factor not found")
        for factor in chosen:
            await services.factors.delete_factor(conn, user_id, factor["id"])
            await record(
                services, conn, Event.FACTOR_REMOVED, user_id, client,
                factor=factor["id"], by="admin",
            )  # fmt: skip
        await _drop_orphan_recovery_codes(services, conn, user_id)
        return chosen
