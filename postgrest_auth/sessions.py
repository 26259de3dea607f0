"""Starting sessions and answering with their tokens: in the body, or as an HttpOnly cookie."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from .client import client_address
from .services import Services
from .session_tokens import hash_session_token, new_session_token
from .store import Connection, Row


async def start_session(
    services: Services, conn: Connection, user: Row, request: Request
) -> tuple[str, str]:
    """A new session for `user`: (session id, opaque token for the cookie or refresh_token)."""
    token = new_session_token()
    user_agent = (request.headers.get("user-agent") or "")[:512] or None
    address = client_address(request, services.settings.http)
    row = await services.store.create_session(
        conn, user["id"], hash_session_token(token), user_agent, address
    )
    return row["id"], token


def token_body(
    services: Services,
    response: Response,
    user: Row | dict[str, Any],
    session_id: str | None,
    session_token: str | None,
) -> dict[str, Any]:
    """The original's `{"access_token"}`, plus type, lifetime and the session's token.

    In cookie mode the session token goes into an HttpOnly cookie, out of reach of scripts,
    and not into the body.
    """
    settings = services.settings
    body: dict[str, Any] = {
        "access_token": services.tokens.access_token(dict(user), session_id),
        "token_type": "bearer",
        "expires_in": settings.payload.exp,
    }
    if session_token is not None:
        if settings.cookie.enabled:
            set_session_cookie(services, response, session_token)
        else:
            body["refresh_token"] = session_token
    return body


def set_session_cookie(services: Services, response: Response, token: str) -> None:
    cookie = services.settings.cookie
    response.set_cookie(
        cookie.name,
        token,
        max_age=cookie.max_age or services.settings.sessions.lifetime,
        path=cookie.path,
        domain=cookie.domain,
        secure=cookie.secure,
        httponly=True,
        samesite=cookie.samesite,
    )


def clear_session_cookie(services: Services, response: Response) -> None:
    cookie = services.settings.cookie
    response.delete_cookie(
        cookie.name,
        path=cookie.path,
        domain=cookie.domain,
        secure=cookie.secure,
        httponly=True,
        samesite=cookie.samesite,
    )


def session_cookie(services: Services, request: Request) -> str | None:
    if not services.settings.cookie.enabled:
        return None
    return request.cookies.get(services.settings.cookie.name) or None
