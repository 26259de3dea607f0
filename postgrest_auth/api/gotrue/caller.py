"""The caller of the GoTrue API: a bearer access token only. The session cookie belongs to the
original API's cookie mode; the Supabase clients never send it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ...accounts import Caller
from ...accounts.sessions import caller_from_access_token
from ...errors import Code, ServiceError
from ..caller import bearer_token
from ..deps import ServicesDep


async def require_bearer_caller(services: ServicesDep, request: Request) -> Caller:
    token = bearer_token(request)
    if token is None:
        raise ServiceError(Code.MISSING_CREDENTIALS, "This endpoint requires a Bearer token")
    return await caller_from_access_token(services, token)


BearerCallerDep = Annotated[Caller, Depends(require_bearer_caller)]
