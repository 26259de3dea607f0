"""Mailed sign-in codes and links (`/otp`, `/recover`, `/resend`) and their verification
(`/verify`), in GoTrue's shapes. Requests answer `{}` for every address, known or not; the
lookup and the mail follow after the answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from ...accounts import confirmation, passwordless, verification
from ...accounts.confirmation import ResendType
from ...accounts.pkce import AuthCode
from ...accounts.recovery import FollowUp
from ...accounts.verification import KINDS_OF_TYPE
from ...addresses import EmailAddress
from ...errors import Code, ServiceError, field_error, invalid
from ...services import Services
from ..deps import ClientDep, ServicesDep
from ..forms import body, documented
from ..fragments import (
    BACK_TO_APP,
    error_fragment,
    redirect_with_fragment,
    session_fragment,
    with_query,
)
from ..verify_form import Verify
from ..verify_form import verify as verify_form
from .errors import status_of
from .links import Challenged, verify_link
from .redirects import redirect_target
from .shapes import full_session_json

router = APIRouter(tags=["gotrue"])


class Otp(Challenged):
    email: EmailAddress | None = None
    phone: str | None = None
    create_user: bool = True
    data: dict[str, Any] | None = None


class Recover(Challenged):
    email: EmailAddress


class Resend(BaseModel):
    type: ResendType
    email: EmailAddress


def _after_answer(
    services: Services, background: BackgroundTasks, follow_up: FollowUp, name: str
) -> dict[str, Any]:
    background.add_task(services.afterwards.detach, follow_up, name)
    return {}


@router.post("/otp", summary="Mail a sign-in link and 6-digit code", openapi_extra=documented(Otp))
async def otp(
    services: ServicesDep,
    client: ClientDep,
    background: BackgroundTasks,
    form: Annotated[Otp, Depends(body(Otp))],
    redirect_to: str | None = None,
) -> dict[str, Any]:
    if form.email is None:
        if form.phone:
            raise ServiceError(Code.PHONE_DISABLED, "Phone sign-in is not supported; use email")
        raise invalid([field_error("email", "This field is required")])
    follow_up = await passwordless.request_otp(
        services,
        client,
        form.email,
        create_user=form.create_user,
        data=form.data,
        link=verify_link(services.settings, redirect_to, form.challenge()),
    )
    return _after_answer(services, background, follow_up, "otp")


@router.post(
    "/recover",
    summary="Mail a recovery link and 6-digit code that sign the account in",
    openapi_extra=documented(Recover),
)
async def recover(
    services: ServicesDep,
    client: ClientDep,
    background: BackgroundTasks,
    form: Annotated[Recover, Depends(body(Recover))],
    redirect_to: str | None = None,
) -> dict[str, Any]:
    link = verify_link(services.settings, redirect_to, form.challenge())
    follow_up = await passwordless.request_recovery(services, client, form.email, link)
    return _after_answer(services, background, follow_up, "recover")


@router.post(
    "/resend",
    summary="Mail the sign-up or address-change confirmation again",
    openapi_extra=documented(Resend),
)
async def resend(
    services: ServicesDep,
    client: ClientDep,
    background: BackgroundTasks,
    form: Annotated[Resend, Depends(body(Resend))],
    redirect_to: str | None = None,
) -> dict[str, Any]:
    link = verify_link(services.settings, redirect_to, None)
    follow_up = await confirmation.resend(services, client, form.type, form.email, link)
    return _after_answer(services, background, follow_up, "resend")


@router.post(
    "/verify",
    summary="Verify a mailed code (type, email, token) or link (type, token_hash): a session",
    openapi_extra=documented(Verify),
)
async def verify(
    services: ServicesDep, client: ClientDep, form: Annotated[Verify, Depends(body(Verify))]
) -> dict[str, Any]:
    granted = await verify_form(services, client, form)
    return await full_session_json(services, granted)


@router.get(
    "/verify",
    summary="The mailed link: verify, then 303 to redirect_to (allow-listed) or site_url with"
    " the session in the fragment, or with ?code= for a PKCE client",
    response_model=None,
    responses=BACK_TO_APP,
)
async def verify_link_in_browser(
    services: ServicesDep,
    client: ClientDep,
    type: str | None = None,
    token: str | None = None,
    token_hash: str | None = None,
    redirect_to: str | None = None,
) -> dict[str, Any] | RedirectResponse:
    target = redirect_target(services.settings, redirect_to)
    try:
        if type not in KINDS_OF_TYPE:
            raise invalid([field_error("type", f"must be one of {', '.join(KINDS_OF_TYPE)}")])
        secret = token_hash or token
        if not secret:
            raise invalid([field_error("token", "This field is required")])
        result = await verification.verify_link(
            services,
            client,
            type,  # type: ignore[arg-type]
            secret,
            opened_in_browser=target is not None,
        )
    except ServiceError as exc:
        if target is None:
            raise
        return redirect_with_fragment(target, error_fragment(exc, status_of(exc)))
    if isinstance(result, AuthCode):
        assert target is not None
        return RedirectResponse(with_query(target, code=result.code), status_code=303)
    if target is None:  # no site_url and no allowed redirect_to: the session as JSON
        return await full_session_json(services, result)
    return redirect_with_fragment(
        target, session_fragment(result, type or "", with_refresh_token=True)
    )
