"""The signed-in caller of a request: a bearer access token, or the session cookie."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..accounts import Caller
from ..accounts.sessions import caller_from_access_token, caller_from_session_token
from ..errors import Code, ServiceError
from ..services import Services
from .deps import ServicesDep
from .grants import session_cookie


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def find_caller(services: Services, request: Request) -> Caller | None:
    """None when the request carries no credentials; refused when they are not (or no longer)
    good."""
    token = bearer_token(request)
    if token is not None:
        return await caller_from_access_token(services, token)
    cookie = session_cookie(services, request)
    if cookie is None:
        return None
    return await caller_from_session_token(services, cookie)


async def require_caller(services: ServicesDep, request: Request) -> Caller:
    caller = await find_caller(services, request)
    if caller is None:
        raise ServiceError(Code.MISSING_CREDENTIALS, "Sign in first: no token and no session")
    return caller


CallerDep = Annotated[Caller, Depends(require_caller)]
