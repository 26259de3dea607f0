"""Verifying a mailed link or code: a session, in the original's token shape.

`GET /verify` is what the mailed link opens in a browser: with `email.redirect_url` it sends the
browser there (303), the session or the error in the URL fragment, which never reaches a server
log; without, it answers as `POST /verify` does.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, model_validator

from ...accounts import ClientInfo, Grant, verification
from ...accounts.verification import KINDS_OF_TYPE, EmailOtpType
from ...addresses import EmailAddress
from ...errors import ServiceError, field_error, invalid
from ...services import Services
from ..deps import ClientDep, ServicesDep
from ..forms import Text, body, documented
from ..fragments import error_fragment, redirect_with_fragment, session_fragment
from ..grants import set_session_cookie, token_body
from .errors import STATUS

router = APIRouter(tags=["email"])


class Verify(BaseModel):
    type: EmailOtpType
    email: EmailAddress | None = None
    token: Text | None = None
    token_hash: Text | None = None

    @model_validator(mode="after")
    def _one_proof(self) -> Verify:
        if self.token_hash is None and self.token is None:
            raise ValueError("give token_hash, or email and token (the code)")
        return self


async def _verify(services: Services, client: ClientInfo, form: Verify) -> Grant:
    if form.token_hash is not None:
        return await verification.verify_link(services, client, form.type, form.token_hash)
    assert form.token is not None
    if form.email is not None:
        return await verification.verify_code(services, client, form.type, form.email, form.token)
    # GoTrue's older clients send a link's token as `token`, with no address.
    return await verification.verify_link(services, client, form.type, form.token)


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
    granted = await _verify(services, client, form)
    return token_body(services, response, granted)


@router.get(
    "/verify",
    summary="The mailed link: verify, then 303 to email.redirect_url with the session in the"
    " fragment (the session as JSON without one)",
    response_model=None,
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
