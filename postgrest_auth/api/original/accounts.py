"""Sign-up, password change and email change, in the original's shapes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, field_validator, model_validator

from ...accounts.confirmation import AwaitingConfirmation
from ...accounts.email_change import change_email as change_email_of
from ...accounts.password_change import change_password as change_password_of
from ...accounts.signup import sign_up as sign_up_user
from ...addresses import EmailAddress
from ..deps import ClientDep, ServicesDep
from ..forms import Text, body, documented
from ..grants import token_body

router = APIRouter(tags=["accounts"])


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class SignUp(BaseModel):
    username: Text
    password: Text
    email: EmailAddress | None = None

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
    email: EmailAddress


@router.post(
    "/users", status_code=201, summary="Create a user and sign in", openapi_extra=documented(SignUp)
)
async def sign_up(
    services: ServicesDep,
    client: ClientDep,
    response: Response,
    form: Annotated[SignUp, Depends(body(SignUp))],
) -> dict[str, Any]:
    result = await sign_up_user(services, client, form.username, form.password, form.email)
    if isinstance(result, AwaitingConfirmation):  # email.confirm: no tokens, no session
        return {"message": "Confirmation email sent; confirm the address to sign in"}
    return token_body(services, response, result)


@router.post(
    "/change_password",
    summary="Change the password; every older token dies",
    openapi_extra=documented(ChangePassword),
)
async def change_password(
    services: ServicesDep,
    client: ClientDep,
    response: Response,
    form: Annotated[ChangePassword, Depends(body(ChangePassword))],
) -> dict[str, Any]:
    granted = await change_password_of(
        services,
        client,
        form.username,
        form.new_password,
        confirmation=form.new_password_confirm,
        current_password=form.current_password,
        reset_token=form.reset_token,
    )
    return token_body(services, response, granted)


@router.post(
    "/change_email",
    summary="Change the email; the old address is told",
    openapi_extra=documented(ChangeEmail),
)
async def change_email(
    services: ServicesDep,
    client: ClientDep,
    form: Annotated[ChangeEmail, Depends(body(ChangeEmail))],
) -> dict[str, str]:
    pending = await change_email_of(services, client, form.username, form.password, form.email)
    if pending:  # email.confirm: the change waits for the new address to confirm it
        return {"message": "Confirmation email sent to the new address"}
    return {"message": "Email changed"}
