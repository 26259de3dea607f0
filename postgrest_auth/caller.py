"""The signed-in caller of a request: a bearer access token, or the session cookie."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from .errors import unauthorized
from .services import Services, ServicesDep
from .session_tokens import hash_session_token
from .sessions import session_cookie
from .store import Row
from .tokens import ACCESS, InvalidToken


@dataclass(frozen=True)
class Caller:
    user: Row
    session_id: str | None


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def verified_access_claims(services: Services, token: str) -> dict[str, Any]:
    """The claims of a valid access token (ours or the Node original's), or 401."""
    try:
        return services.tokens.decode(token, ACCESS)
    except InvalidToken as exc:
        raise unauthorized(
            "invalid_token", f"Bearer token refused: {exc}", "invalid_token"
        ) from None


async def find_caller(services: Services, request: Request) -> Caller | None:
    """None when the request carries no credentials; 401 when they are not (or no longer) good."""
    token = bearer_token(request)
    if token is not None:
        claims = verified_access_claims(services, token)
        if not str(claims.get("sub", "")).isdigit():
            raise unauthorized(
                "invalid_token", "Sign in again to get a current token", "invalid_token"
            )
        async with services.pool.acquire() as conn:
            user = await services.store.live_session(
                conn, int(claims["sub"]), claims["count"], claims.get("sid")
            )
        if user is None:
            raise unauthorized("token_revoked", "The token is no longer valid", "invalid_token")
        return Caller(user, claims.get("sid"))
    cookie = session_cookie(services, request)
    if cookie is None:
        return None
    async with services.pool.acquire() as conn:
        row = await services.store.session_user_by_token(conn, hash_session_token(cookie))
    if row is None:
        raise unauthorized("session_ended", "The session has ended; sign in again")
    return Caller(row, row["session_id"])


async def require_caller(services: ServicesDep, request: Request) -> Caller:
    caller = await find_caller(services, request)
    if caller is None:
        raise unauthorized("missing_credentials", "Sign in first: no token and no session")
    return caller


CallerDep = Annotated[Caller, Depends(require_caller)]
