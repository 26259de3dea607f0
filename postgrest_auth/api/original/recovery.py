"""Forgotten password or username: the same answer whether or not the account exists."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends
from pydantic import BaseModel, Field

from ...accounts import recovery
from ...addresses import EmailAddress
from ..deps import ClientDep, ServicesDep
from ..forms import body, documented

router = APIRouter(tags=["recovery"])


class ForgotPassword(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=1024)]


class ForgotUsername(BaseModel):
    email: EmailAddress


@router.post(
    "/forgot_password",
    summary="Mail a one-time reset token (valid one hour)",
    openapi_extra=documented(ForgotPassword),
)
async def forgot_password(
    services: ServicesDep,
    client: ClientDep,
    background: BackgroundTasks,
    form: Annotated[ForgotPassword, Depends(body(ForgotPassword))],
) -> dict[str, str]:
    """The lookup and the mail run detached, after the answer has gone out."""
    follow_up = await recovery.forgot_password(services, client, form.username)
    background.add_task(services.afterwards.detach, follow_up, "forgot_password")
    return {"message": "Password reset email sent"}


@router.post(
    "/forgot_username",
    summary="Mail the username to the account's address",
    openapi_extra=documented(ForgotUsername),
)
async def forgot_username(
    services: ServicesDep,
    client: ClientDep,
    background: BackgroundTasks,
    form: Annotated[ForgotUsername, Depends(body(ForgotUsername))],
) -> dict[str, str]:
    """Answered before the lookup, as forgot_password is."""
    follow_up = await recovery.forgot_username(services, client, form.email)
    background.add_task(services.afterwards.detach, follow_up, "forgot_username")
    return {"message": "Username Email sent"}
