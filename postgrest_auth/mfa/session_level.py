"""Authenticator assurance (GoTrue's aal): a session is aal2 once a second factor verified in
it. The rule `access_claims` applies in SQL, for the checks the operations make, and the one
way a session is raised."""

from __future__ import annotations

from ..accounts import Caller
from ..accounts.grants import Grant, grant
from ..errors import Code, ServiceError
from ..services import Services
from ..session_tokens import hash_session_token, new_session_token
from ..store import Connection

# amr methods of a second factor (GoTrue's names).
TOTP = "totp"
RECOVERY_CODE = "mfa/recovery_code"
SECOND_FACTORS = (TOTP, RECOVERY_CODE)


async def is_aal2(services: Services, conn: Connection, caller: Caller) -> bool:
    if caller.session_id is None:
        return False
    return await services.factors.session_is_aal2(conn, caller.session_id)


async def require_aal2(services: Services, conn: Connection, caller: Caller, why: str) -> None:
    if not await is_aal2(services, conn, caller):
        raise ServiceError(Code.INSUFFICIENT_AAL, f"AAL2 required to {why}")


async def require_aal2_if_enrolled(
    services: Services, conn: Connection, caller: Caller, why: str
) -> None:
    """Once an account has a verified second factor, a password alone does not change its
    password or address (GoTrue's rule), else a stolen password would take the account."""
    if await services.factors.second_factor_missing(conn, caller.user["id"], caller.session_id):
        raise ServiceError(Code.INSUFFICIENT_AAL, f"AAL2 required to {why}")


async def step_up(services: Services, conn: Connection, caller: Caller, method: str) -> Grant:
    """New tokens for the caller's session, which now counts `method`: aal2."""
    if caller.session_id is None:
        raise ServiceError(Code.SESSION_NOT_FOUND, "Sign in with a session first")
    token = new_session_token()
    row = await services.factors.step_up_session(
        conn,
        caller.session_id,
        method,
        hash_session_token(token),
        hash_session_token(services.tokens.next_session_token(token)),
    )
    if row is None:
        raise ServiceError(Code.TOKEN_REVOKED, "The session has ended; sign in again")
    return grant(services, row, token)
