"""Signing in by mail (a magic link and a code) and recovering an account by mail: the same
answer for every address; the lookup and the mail follow after it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends
from pydantic import BaseModel

from ...accounts import passwordless
from ...addresses import EmailAddress
from ..deps import ClientDep, ServicesDep
from ..forms import body, documented

router = APIRouter(tags=["email"])


class Otp(BaseModel):
    email: EmailAddress
    create_user: bool = True
    data: dict[str, Any] | None = None


class Recover(BaseModel):
    email: EmailAddress


@router.post(
    "/otp",
    summary="Mail a sign-in link and 6-digit code; create_user makes an account for a new address",
    openapi_extra=documented(Otp),
)
async def otp(
    services: ServicesDep,
    client: ClientDep,
    background: BackgroundTasks,
    form: Annotated[Otp, Depends(body(Otp))],
) -> dict[str, str]:
    follow_up = await passwordless.request_otp(
        services, client, form.email, create_user=form.create_user, data=form.data
    )
    background.add_task(services.afterwards.detach, follow_up, "otp")
    return {"message": "Sign-in email sent"}


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
) -> dict[str, str]:
    follow_up = await passwordless.request_recovery(services, client, form.email)
    background.add_task(services.afterwards.detach, follow_up, "recover")
    return {"message": "Recovery email sent"}
