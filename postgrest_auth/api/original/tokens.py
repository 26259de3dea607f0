"""Sign-in and token refresh (the original's refresh_token does both), and sign-out."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from ...accounts import sessions
from ...errors import Code, ServiceError
from ..caller import CallerDep, bearer_token
from ..deps import ClientDep, ServicesDep
from ..forms import Text, body, documented
from ..grants import clear_session_cookie, session_cookie, token_body

router = APIRouter(tags=["tokens"])


class Login(BaseModel):
    username: Text
    password: Text


class Refresh(BaseModel):
    username: Text | None = None
    password: Text | None = None
    refresh_token: Text | None = None


class Logout(BaseModel):
    scope: Literal["local", "global"] = "local"


@router.post(
    "/login",
    summary="Sign in with username or email, and password",
    openapi_extra=documented(Login),
)
async def login(
    services: ServicesDep,
    client: ClientDep,
    response: Response,
    form: Annotated[Login, Depends(body(Login))],
) -> dict[str, Any]:
    granted = await sessions.sign_in_with_password(
        services, client, form.username, form.password, by_email=True
    )
    return token_body(services, response, granted)


@router.post(
    "/refresh_token",
    summary="A new access token, from a password, an access token, a refresh token or the cookie",
    openapi_extra=documented(Refresh),
)
async def refresh_token(
    services: ServicesDep,
    client: ClientDep,
    request: Request,
    response: Response,
    form: Annotated[Refresh, Depends(body(Refresh))],
) -> dict[str, Any]:
    if form.username is not None and form.password is not None:
        granted = await sessions.sign_in_with_password(
            services, client, form.username, form.password, by_email=False
        )
        return token_body(services, response, granted)
    access_token = bearer_token(request)
    if access_token is not None:
        granted = await sessions.refresh_with_access_token(services, client, access_token)
        return token_body(services, response, granted)
    session_token = form.refresh_token or session_cookie(services, request)
    if session_token is None:
        raise ServiceError(
            Code.MISSING_CREDENTIALS,
            "Give username and password, a bearer access token, a refresh_token or the cookie",
        )
    granted = await sessions.refresh_with_session_token(services, client, session_token)
    return token_body(services, response, granted)


@router.post(
    "/logout",
    summary="End this session, or every session with scope=global",
    openapi_extra=documented(Logout),
)
async def logout(
    services: ServicesDep,
    client: ClientDep,
    caller: CallerDep,
    response: Response,
    form: Annotated[Logout, Depends(body(Logout))],
) -> dict[str, str]:
    await sessions.sign_out(services, client, caller, form.scope)
    clear_session_cookie(services, response)
    return {"message": "Signed out" if form.scope == "local" else "Signed out everywhere"}
