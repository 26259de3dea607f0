"""Sign-up, password change and email change."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, EmailStr, field_validator, model_validator

from ..client import client_address
from ..errors import ApiError, field_error, invalid, unauthorized
from ..forms import Text, body, documented
from ..services import Services, ServicesDep
from ..sessions import start_session, token_body
from ..store import Row
from ..tokens import RESET, InvalidToken
from ..validation import password_problems, refuse_if, username_problems
from .credentials import verify_password_login

router = APIRouter(tags=["accounts"])


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class SignUp(BaseModel):
    username: Text
    password: Text
    email: EmailStr | None = None

    _email = field_validator("email", mode="before")(_blank_is_none)


class ChangePassword(BaseModel):
    username: Text
    current_password: Text | None = None
    reset_token: Text | None = None
    new_password: Text
    new_password_confirm: Text

    _blank = field_validator("current_password", "reset_token", mode="before")(_blank_is_none)

    @model_validator(mode="after")
    def _one_proof(self) -> ChangePassword:
        if (self.current_password is None) == (self.reset_token is None):
            raise ValueError("give either current_password or reset_token")
        return self


class ChangeEmail(BaseModel):
    username: Text
    password: Text
    email: EmailStr


def _taken(exc: asyncpg.UniqueViolationError | asyncpg.DuplicateObjectError) -> ApiError:
    # Ours is <table>_email_uniq; a table adopted from the Node original may have <table>_email_key.
    constraint = getattr(exc, "constraint_name", None) or ""
    field = "email" if constraint.endswith(("_email_uniq", "_email_key")) else "username"
    return ApiError(
        409,
        f"{field}_taken",
        f"That {field} is already taken",
        [field_error(field, "is already taken")],
    )


@router.post(
    "/users", status_code=201, summary="Create a user and sign in", openapi_extra=documented(SignUp)
)
async def sign_up(
    services: ServicesDep,
    request: Request,
    response: Response,
    form: Annotated[SignUp, Depends(body(SignUp))],
) -> dict[str, Any]:
    settings = services.settings
    refuse_if(
        username_problems(settings, form.username)
        + password_problems(settings, "password", form.password)
    )
    async with services.pool.acquire() as conn:
        await services.limiter.hit_address(conn, "signup", client_address(request, settings.http))
    password_hash = await services.hasher.hash(form.password)
    try:
        async with services.pool.acquire() as conn, conn.transaction():
            user = await services.store.insert_user(conn, form.username, form.email, password_hash)
            if settings.roles.per_user:
                await services.store.create_user_role(conn, user["username_lowercase"])
            session_id, session_token = await start_session(services, conn, user, request)
            if user["email"]:
                await services.outbox.enqueue(
                    conn, "welcome", user["email"], username=user["username"]
                )
    except (asyncpg.UniqueViolationError, asyncpg.DuplicateObjectError) as exc:
        raise _taken(exc) from None
    except asyncpg.ReservedNameError:  # compat mode: "public", "none", "pg_…" cannot be roles
        raise ApiError(
            409,
            "username_taken",
            "That username is not available",
            [field_error("username", "is not available")],
        ) from None
    except asyncpg.StringDataRightTruncationError:  # a usernames.pattern wider than the column
        raise invalid([field_error("username", "is longer than the users table allows")]) from None
    return token_body(services, response, user, session_id, session_token)


async def _user_proving_reset(services: Services, form: ChangePassword) -> Row:
    try:
        claims = services.tokens.decode(form.reset_token or "", RESET)
    except InvalidToken as exc:
        raise unauthorized("invalid_reset_token", f"The reset token is refused: {exc}") from None
    async with services.pool.acquire() as conn:
        user = await services.store.user_by_username(conn, form.username)
    if (
        user is None
        or str(user["id"]) != claims.get("sub")
        or user["token_count"] != claims["count"]
        or not hmac.compare_digest(
            str(claims.get("eml", "")), services.tokens.email_fingerprint(user["email"])
        )
    ):
        # Used already (the count moved on), made for another account, or mailed to an
        # address the account no longer has.
        raise unauthorized("invalid_reset_token", "The reset token is no longer valid")
    return user


@router.post(
    "/change_password",
    summary="Change the password; every older token dies",
    openapi_extra=documented(ChangePassword),
)
async def change_password(
    services: ServicesDep,
    request: Request,
    response: Response,
    form: Annotated[ChangePassword, Depends(body(ChangePassword))],
) -> dict[str, Any]:
    problems = password_problems(services.settings, "new_password", form.new_password)
    if form.new_password != form.new_password_confirm:
        problems.append(field_error("new_password_confirm", "does not match new_password"))
    refuse_if(problems)
    if form.reset_token is not None:
        user = await _user_proving_reset(services, form)
    else:
        user = await verify_password_login(
            services,
            request,
            "change_password",
            form.username,
            form.current_password or "",
            by_email=False,
        )
    new_hash = await services.hasher.hash(form.new_password)
    async with services.pool.acquire() as conn, conn.transaction():
        updated = await services.store.set_password(conn, user["id"], new_hash, user["token_count"])
        if updated is None:  # another change won the race; this proof is spent
            raise unauthorized("invalid_credentials", "The password changed meanwhile; try again")
        await services.store.revoke_sessions(conn, user["id"])  # every device signs in anew
        session_id, session_token = await start_session(services, conn, updated, request)
        if updated["email"]:
            await services.outbox.enqueue(
                conn, "password_changed", updated["email"], username=updated["username"]
            )
    return token_body(services, response, updated, session_id, session_token)


@router.post(
    "/change_email",
    summary="Change the email; the old address is told",
    openapi_extra=documented(ChangeEmail),
)
async def change_email(
    services: ServicesDep,
    request: Request,
    form: Annotated[ChangeEmail, Depends(body(ChangeEmail))],
) -> dict[str, str]:
    user = await verify_password_login(
        services, request, "change_email", form.username, form.password, by_email=False
    )
    try:
        async with services.pool.acquire() as conn, conn.transaction():
            updated = await services.store.set_email(conn, user["id"], form.email)
            old, new = user["email"], updated["email"]
            if old and old != new:
                await services.outbox.enqueue(
                    conn,
                    "email_changed",
                    old,
                    username=user["username"],
                    old_email=old,
                    new_email=new,
                )
    except asyncpg.UniqueViolationError as exc:
        raise _taken(exc) from None
    return {"message": "Email changed"}
