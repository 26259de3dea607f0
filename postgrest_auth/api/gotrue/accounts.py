"""Sign-up, sign-in and refresh (`/token`), the signed-in user, and sign-out: GoTrue's shapes
over the account operations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from ...accounts import sessions
from ...accounts.confirmation import AwaitingConfirmation
from ...accounts.own_account import UNCHANGED, update_own_account
from ...accounts.pkce import exchange_code
from ...accounts.signup import sign_up as sign_up_user
from ...addresses import EmailAddress
from ...errors import Code, ServiceError, field_error, invalid
from ..deps import ClientDep, ServicesDep
from ..forms import Text, body, documented, read_fields
from .caller import BearerCallerDep
from .links import Challenged, verify_link
from .shapes import full_session_json, full_user_json, session_json, user_json

router = APIRouter(tags=["gotrue"])


def _no_phone(phone: str | None) -> None:
    if phone:
        raise ServiceError(Code.PHONE_DISABLED, "Phone sign-in is not supported; use email")


class SignUp(Challenged):
    email: EmailAddress | None = None
    phone: str | None = None
    password: Text | None = None
    data: dict[str, Any] | None = None


class PasswordGrant(BaseModel):
    email: EmailAddress | None = None
    phone: str | None = None
    password: Text


class RefreshGrant(BaseModel):
    refresh_token: Text


class PkceGrant(BaseModel):
    auth_code: Text
    code_verifier: Text


class UpdateUser(Challenged):
    email: EmailAddress | None = None
    phone: str | None = None
    password: Text | None = None
    data: Any = None


@router.post("/signup", summary="Sign up with email and password", openapi_extra=documented(SignUp))
async def sign_up(
    services: ServicesDep,
    client: ClientDep,
    form: Annotated[SignUp, Depends(body(SignUp))],
    redirect_to: str | None = None,
) -> dict[str, Any]:
    """A session; with `email.confirm`, the bare user (no session) and a mail to confirm."""
    _no_phone(form.phone)
    if form.email is None and form.password is None:  # signInAnonymously
        raise ServiceError(Code.ANONYMOUS_DISABLED, "Anonymous sign-ins are not supported")
    if form.email is None or form.password is None:
        missing = "email" if form.email is None else "password"
        raise invalid([field_error(missing, "This field is required")])
    try:
        result = await sign_up_user(
            services,
            client,
            None,
            form.password,
            form.email,
            data=form.data,
            link=verify_link(services.settings, redirect_to, form.challenge()),
        )
    except ServiceError as exc:
        if exc.code is Code.EMAIL_TAKEN:  # GoTrue's word for a sign-up, not for a change
            raise ServiceError(Code.USER_ALREADY_EXISTS, "User already registered") from exc
        raise
    if isinstance(result, AwaitingConfirmation):
        return user_json(services.settings, result.user)
    return session_json(services.settings, result)


@router.post(
    "/token",
    summary="grant_type=password, refresh_token or pkce: a session",
    openapi_extra=documented(PasswordGrant),
)
async def token(
    services: ServicesDep,
    client: ClientDep,
    request: Request,
    grant_type: Annotated[Literal["password", "refresh_token", "pkce"], Query()],
) -> dict[str, Any]:
    if grant_type == "password":
        password_form = await body(PasswordGrant)(request)
        _no_phone(password_form.phone)
        if password_form.email is None:
            raise invalid([field_error("email", "This field is required")])
        granted = await sessions.sign_in_with_password(
            services, client, password_form.email, password_form.password, by_email=True
        )
    elif grant_type == "refresh_token":
        refresh_form = await body(RefreshGrant)(request)
        granted = await sessions.refresh_with_session_token(
            services, client, refresh_form.refresh_token, linked=True
        )
    else:
        pkce_form = await body(PkceGrant)(request)
        granted = await exchange_code(
            services, client, pkce_form.auth_code, pkce_form.code_verifier
        )
    return await full_session_json(services, granted)


@router.get("/user", summary="The signed-in user")
async def get_user(services: ServicesDep, caller: BearerCallerDep) -> dict[str, Any]:
    return await full_user_json(services, caller.user)


@router.put(
    "/user",
    summary="Change the signed-in user's email, password or data (user_metadata)",
    openapi_extra=documented(UpdateUser),
)
async def update_user(
    services: ServicesDep,
    client: ClientDep,
    caller: BearerCallerDep,
    form: Annotated[UpdateUser, Depends(body(UpdateUser))],
    redirect_to: str | None = None,
) -> dict[str, Any]:
    """Data first, then the password (every other session ends; this one goes on), then the
    address (with `email.confirm` it waits in `new_email` for the new address to confirm)."""
    _no_phone(form.phone)
    email = None
    if form.email is not None:
        email = (form.email, verify_link(services.settings, redirect_to, form.challenge()))
    user = await update_own_account(
        services,
        client,
        caller,
        metadata=UNCHANGED if form.data is None else form.data,
        password=form.password,
        email=email,
    )
    return await full_user_json(services, user)


@router.post("/logout", status_code=204, summary="Sign out: scope local, global or others")
async def logout(
    services: ServicesDep,
    client: ClientDep,
    caller: BearerCallerDep,
    request: Request,
    scope: Literal["local", "global", "others"] = "global",
) -> Response:
    await read_fields(request)  # an empty JSON body is what the clients send
    await sessions.sign_out(services, client, caller, scope)
    return Response(status_code=204)
