"""Sign-in and token refresh (the original's refresh_token does both), and sign-out."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from ..caller import CallerDep, bearer_token, verified_access_claims
from ..errors import unauthorized
from ..forms import Text, body, documented
from ..services import Services, ServicesDep
from ..session_tokens import hash_session_token
from ..sessions import clear_session_cookie, session_cookie, start_session, token_body
from ..tokens import is_node_token
from .credentials import verify_password_login

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


async def _password_sign_in(
    services: Services,
    request: Request,
    response: Response,
    login: str,
    password: str,
    *,
    by_email: bool,
) -> dict[str, Any]:
    user = await verify_password_login(
        services, request, "login", login, password, by_email=by_email
    )
    async with services.pool.acquire() as conn, conn.transaction():
        await services.store.record_sign_in(conn, user["id"])
        session_id, session_token = await start_session(services, conn, user, request)
    return token_body(services, response, user, session_id, session_token)


@router.post(
    "/login",
    summary="Sign in with username or email, and password",
    openapi_extra=documented(Login),
)
async def login(
    services: ServicesDep,
    request: Request,
    response: Response,
    form: Annotated[Login, Depends(body(Login))],
) -> dict[str, Any]:
    return await _password_sign_in(
        services, request, response, form.username, form.password, by_email=True
    )


async def _refresh_by_access_token(
    services: Services, request: Request, response: Response, token: str
) -> dict[str, Any]:
    """The token's session extended; a Node-era token (no session) is traded for one of ours."""
    claims = verified_access_claims(services, token)
    store = services.store
    async with services.pool.acquire() as conn:
        if is_node_token(claims):
            user = await store.user_by_username(conn, claims["aud"])
            if user is not None and user["token_count"] == claims["count"]:
                session_id, session_token = await start_session(services, conn, user, request)
                return token_body(services, response, user, session_id, session_token)
        elif str(claims.get("sub", "")).isdigit() and claims.get("sid"):
            row = await store.refresh_session_by_claims(
                conn, int(claims["sub"]), claims["count"], claims["sid"]
            )
            if row is not None:
                return token_body(services, response, row, row["session_id"], None)
    raise unauthorized("token_revoked", "The token is no longer valid", "invalid_token")


@router.post(
    "/refresh_token",
    summary="A new access token, from a password, an access token, a refresh token or the cookie",
    openapi_extra=documented(Refresh),
)
async def refresh_token(
    services: ServicesDep,
    request: Request,
    response: Response,
    form: Annotated[Refresh, Depends(body(Refresh))],
) -> dict[str, Any]:
    if form.username is not None and form.password is not None:
        return await _password_sign_in(
            services, request, response, form.username, form.password, by_email=False
        )
    access_token = bearer_token(request)
    if access_token is not None:
        return await _refresh_by_access_token(services, request, response, access_token)
    session_token = form.refresh_token or session_cookie(services, request)
    if session_token is None:
        raise unauthorized(
            "missing_credentials",
            "Give username and password, a bearer access token, a refresh_token or the cookie",
        )
    async with services.pool.acquire() as conn:
        row = await services.store.refresh_session_by_token(conn, hash_session_token(session_token))
    if row is None:
        raise unauthorized("session_ended", "The session has ended; sign in again")
    # The cookie's lifetime follows the session's; a body refresh token stays the same.
    return token_body(services, response, row, row["session_id"], session_token)


@router.post(
    "/logout",
    summary="End this session, or every session with scope=global",
    openapi_extra=documented(Logout),
)
async def logout(
    services: ServicesDep,
    caller: CallerDep,
    response: Response,
    form: Annotated[Logout, Depends(body(Logout))],
) -> dict[str, str]:
    user_id = caller.user["id"]
    async with services.pool.acquire() as conn, conn.transaction():
        if form.scope == "global":
            # The user row first, then the sessions: the order change_password locks them in.
            await services.store.bump_token_count(conn, user_id)  # sessionless tokens die too
            await services.store.revoke_sessions(conn, user_id)
        elif caller.session_id is None or not await services.store.revoke_session(
            conn, user_id, caller.session_id
        ):
            raise unauthorized("session_ended", "This session has already ended")
    clear_session_cookie(services, response)
    return {"message": "Signed out" if form.scope == "local" else "Signed out everywhere"}
