"""Verifying a mailed link or code: a session, in the original's token shape.

`GET /verify` is what the mailed link opens in a browser: with `email.redirect_url` it sends the
browser there (303), the session or the error in the URL fragment, which never reaches a server
log; without, it answers as `POST /verify` does.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from ...accounts import verification
from ...accounts.verification import KINDS_OF_TYPE
from ...errors import ServiceError, field_error, invalid
from ..deps import ClientDep, ServicesDep
from ..forms import body, documented
from ..fragments import BACK_TO_APP, error_fragment, redirect_with_fragment, session_fragment
from ..grants import set_session_cookie, token_body
from ..verify_form import Verify
from ..verify_form import verify as verify_form
from .errors import STATUS

router = APIRouter(tags=["email"])


@router.post(
    "/verify",
    summary="Verify a mailed code (type, email, token) or link (type, token_hash): a session",
    openapi_extra=documented(Verify),
)
async def verify(
    services: ServicesDep,
    client: ClientDep,
    response: Response,
    form: Annotated[Verify, Depends(body(Verify))],
) -> dict[str, Any]:
    granted = await verify_form(services, client, form)
    return token_body(services, response, granted)


@router.get(
    "/verify",
    summary="The mailed link: verify, then 303 to email.redirect_url with the session in the"
    " fragment (the session as JSON without one)",
    response_model=None,
    responses=BACK_TO_APP,
)
async def verify_link(
    services: ServicesDep,
    client: ClientDep,
    response: Response,
    type: str | None = None,
    token_hash: str | None = None,
    token: str | None = None,
) -> dict[str, Any] | Response:
    redirect_url = services.settings.email.redirect_url
    try:
        if type not in KINDS_OF_TYPE:
            raise invalid([field_error("type", f"must be one of {', '.join(KINDS_OF_TYPE)}")])
        secret = token_hash or token
        if not secret:
            raise invalid([field_error("token_hash", "This field is required")])
        granted = await verification.verify_link(services, client, type, secret)  # type: ignore[arg-type]
    except ServiceError as exc:
        if redirect_url is None:
            raise
        return redirect_with_fragment(redirect_url, error_fragment(exc, STATUS.get(exc.code, 400)))
    if redirect_url is None:
        return token_body(services, response, granted)
    cookie_mode = services.settings.cookie.enabled
    fragment = session_fragment(granted, type, with_refresh_token=not cookie_mode)
    redirect = redirect_with_fragment(redirect_url, fragment)
    if granted.refresh_token is not None and cookie_mode:  # out of reach of scripts
        set_session_cookie(services, redirect, granted.refresh_token)
    return redirect
