"""Forgotten password or username: the same answer whether or not the account exists."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from pydantic import BaseModel, EmailStr, Field

from ..client import client_address
from ..forms import body, documented
from ..services import Services, ServicesDep

router = APIRouter(tags=["recovery"])


class ForgotPassword(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=1024)]


class ForgotUsername(BaseModel):
    email: EmailStr


def reset_link(template: str | None, token: str, username: str) -> str:
    """The configured URL with `{token}` and `{username}` filled in, or the raw token."""
    if not template:
        return token
    return template.replace("{token}", token).replace("{username}", username)


async def _count_attempt(services: Services, request: Request, action: str, account: str) -> None:
    """Per address and per account, known or not: a 429 says nothing about existence."""
    address = client_address(request, services.settings.http)
    async with services.pool.acquire() as conn:
        await services.limiter.hit_address(conn, "recovery", address)
        await services.limiter.hit_account(conn, action, account)


@router.post(
    "/forgot_password",
    summary="Mail a one-time reset token (valid one hour)",
    openapi_extra=documented(ForgotPassword),
)
async def forgot_password(
    services: ServicesDep,
    request: Request,
    background: BackgroundTasks,
    form: Annotated[ForgotPassword, Depends(body(ForgotPassword))],
) -> dict[str, str]:
    """The lookup and the mail happen after the answer, so a known and an unknown account take
    the same time to answer; the request changes nothing, so there is nothing to roll back."""
    settings = services.settings
    await _count_attempt(services, request, "forgot_password", form.username)

    async def send() -> None:
        async with services.pool.acquire() as conn, conn.transaction():
            user = await services.store.user_by_username(conn, form.username)
            if user is None or not user["email"]:
                return
            token = services.tokens.reset_token(dict(user))
            await services.outbox.enqueue(
                conn,
                "reset_password",
                user["email"],
                username=user["username"],
                reset_link=reset_link(settings.email.reset_url, token, user["username"]),
                reset_token=token,
                reset_minutes=str(settings.email.reset_token_exp // 60),
            )

    background.add_task(services.afterwards.detach, send, "forgot_password")
    return {"message": "Password reset email sent"}


@router.post(
    "/forgot_username",
    summary="Mail the username to the account's address",
    openapi_extra=documented(ForgotUsername),
)
async def forgot_username(
    services: ServicesDep,
    request: Request,
    background: BackgroundTasks,
    form: Annotated[ForgotUsername, Depends(body(ForgotUsername))],
) -> dict[str, str]:
    """Answered before the lookup, as forgot_password is."""
    await _count_attempt(services, request, "forgot_username", form.email)

    async def send() -> None:
        async with services.pool.acquire() as conn, conn.transaction():
            user = await services.store.user_by_email(conn, form.email)
            if user is not None:
                await services.outbox.enqueue(
                    conn, "forgot_username", user["email"], username=user["username"]
                )

    background.add_task(services.afterwards.detach, send, "forgot_username")
    return {"message": "Username Email sent"}
