"""Recovery codes: ten single-use codes that stand in for a lost authenticator, so a lost
phone is not a lost account. They form one factor of type `recovery_code` (auth-js's
`mfa.recoveryCodes`); only an aal2 session makes or removes them, and using one raises a
session to aal2 — after which the user can remove the lost factor and enrol a new one."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from ..accounts import Caller
from ..accounts.audit import Event, record
from ..accounts.context import ClientInfo
from ..accounts.grants import Grant
from ..errors import Code, ServiceError
from ..services import Services
from ..store import Connection, Row
from .factors import has_verified_totp
from .session_level import RECOVERY_CODE, require_aal2, step_up

COUNT = 10
DEFAULT_NAME = "Recovery codes"
# 16 characters of this alphabet: 79 bits each, beyond guessing even from a stolen digest;
# no 0/o, 1/l/i to misread.
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
LENGTH = 16
GROUP = 4


@dataclass(frozen=True)
class RecoveryCodes:
    factor_id: str
    friendly_name: str
    codes: list[str]


def canonical(code: str) -> str:
    """As typed, minus case, spaces and dashes."""
    return "".join(c for c in code.lower() if c not in " -\t")


def _new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(raw[i : i + GROUP] for i in range(0, LENGTH, GROUP))


def _digest(factor_id: str, code: str) -> bytes:
    """Unkeyed, so codes outlive a rotation of the signing keys (they live for years); the
    codes' 79 bits are what keeps a stolen digest from giving its code back."""
    return hashlib.sha256(f"recovery_code:{factor_id}:{canonical(code)}".encode()).digest()


async def _recovery_factor(services: Services, conn: Connection, user_id: int) -> Row | None:
    factors = await services.factors.factors_of(conn, user_id)
    return next((f for f in factors if f["factor_type"] == "recovery_code"), None)


async def generate(
    services: Services, client: ClientInfo, caller: Caller, friendly_name: str | None = None
) -> RecoveryCodes:
    """A new set (replacing any older one), shown once."""
    user_id = caller.user["id"]
    async with services.pool.acquire() as conn, conn.transaction():
        await services.factors.lock_user(conn, user_id)
        await require_aal2(services, conn, caller, "generate recovery codes")
        factors = await services.factors.factors_of(conn, user_id)
        if not has_verified_totp(factors):
            raise ServiceError(
                Code.MFA_FACTOR_NOT_FOUND, "Recovery codes stand in for a verified TOTP factor"
            )
        factor = next((f for f in factors if f["factor_type"] == "recovery_code"), None)
        if factor is None:
            factor = await services.factors.insert_factor(
                conn, user_id, friendly_name or DEFAULT_NAME, "recovery_code", None
            )
        codes = [_new_code() for _ in range(COUNT)]
        await services.factors.replace_recovery_codes(
            conn, factor["id"], [_digest(factor["id"], c) for c in codes]
        )
        await record(services, conn, Event.RECOVERY_CODES_GENERATED, user_id, client)
    return RecoveryCodes(factor["id"], factor["friendly_name"], codes)


async def status(services: Services, caller: Caller) -> tuple[str, Row]:
    """The factor's id, and `total` and `remaining`; never a code."""
    async with services.pool.acquire() as conn:
        factor = await _recovery_factor(services, conn, caller.user["id"])
        if factor is None:
            raise ServiceError(Code.MFA_FACTOR_NOT_FOUND, "No recovery codes; generate them first")
        return factor["id"], await services.factors.recovery_status(conn, factor["id"])


async def verify(services: Services, client: ClientInfo, caller: Caller, code: str) -> Grant:
    """One unused code raises the caller's session to aal2 and is spent."""
    user_id = caller.user["id"]
    async with services.pool.acquire() as conn:
        factor = await _recovery_factor(services, conn, user_id)
        if factor is None:
            raise ServiceError(Code.MFA_FACTOR_NOT_FOUND, "No recovery codes for this account")
        await services.limiter.hit_factor(conn, factor["id"], services.settings.mfa.failures)
        digest = _digest(factor["id"], code)
        async with conn.transaction():
            if await services.factors.spend_recovery_code(conn, factor["id"], digest):
                await services.limiter.forgive_factor(conn, factor["id"])
                await record(services, conn, Event.RECOVERY_CODE_USED, user_id, client)
                return await step_up(services, conn, caller, RECOVERY_CODE)
        await record(services, conn, Event.FACTOR_FAILED, user_id, client, factor=factor["id"])
    raise ServiceError(Code.MFA_VERIFICATION_FAILED, "Invalid recovery code entered")


async def remove(services: Services, client: ClientInfo, caller: Caller) -> str:
    user_id = caller.user["id"]
    async with services.pool.acquire() as conn, conn.transaction():
        await require_aal2(services, conn, caller, "remove recovery codes")
        factor = await _recovery_factor(services, conn, user_id)
        if factor is None:
            raise ServiceError(Code.MFA_FACTOR_NOT_FOUND, "No recovery codes for this account")
        await services.factors.delete_factor(conn, user_id, factor["id"])
        await record(services, conn, Event.FACTOR_REMOVED, user_id, client, factor=factor["id"])
        return str(factor["id"])
