"""Answering a grant: tokens in the body, or the session's token in an HttpOnly cookie."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from ..accounts import Grant
from ..services import Services


def token_body(services: Services, response: Response, granted: Grant) -> dict[str, Any]:
    """The original's `{"access_token"}`, plus type, lifetime and the session's token.

    In cookie mode the session token goes into an HttpOnly cookie, out of reach of scripts,
    and not into the body.
    """
    body: dict[str, Any] = {
        "access_token": granted.access_token,
        "token_type": "bearer",
        "expires_in": granted.expires_in,
    }
    if granted.refresh_token is not None:
        if services.settings.cookie.enabled:
            set_session_cookie(services, response, granted.refresh_token)
        else:
            body["refresh_token"] = granted.refresh_token
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
