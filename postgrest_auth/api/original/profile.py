"""The signed-in user's own account: its metadata, and deleting it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel

from ...accounts import profile
from ...accounts.deletion import delete_account
from ...accounts.own_account import UNCHANGED, update_own_account
from ...errors import field_error, invalid
from ...store import Row
from ..caller import CallerDep
from ..deps import ClientDep, ServicesDep
from ..forms import Text, body, documented
from ..grants import clear_session_cookie

router = APIRouter(tags=["profile"])


def user_body(user: Row, session_id: str | None) -> dict[str, Any]:
    """What `GET /user` answers: the account's public fields and the caller's session."""
    return {**profile.public_user(user), "session_id": session_id}


class UpdateUser(BaseModel):
    # Any JSON: the operation says why a non-object is refused, as for every API.
    user_metadata: Any = None
    # After a recovery link or code (a fresh session), how a forgotten password is set.
    password: Text | None = None


class DeleteUser(BaseModel):
    password: Text | None = None


UPDATE_SUMMARY = (
    "Change user_metadata (keys given replace, keys given as null are removed) or the password"
    " (every other session ends)"
)


@router.patch("/user", summary=UPDATE_SUMMARY, openapi_extra=documented(UpdateUser))
@router.put("/user", summary=UPDATE_SUMMARY, openapi_extra=documented(UpdateUser))
async def update_user(
    services: ServicesDep,
    client: ClientDep,
    caller: CallerDep,
    form: Annotated[UpdateUser, Depends(body(UpdateUser))],
) -> dict[str, Any]:
    """Answers the user as `GET /user` does; the claims of the caller's tokens change at the
    next refresh (cookie mode: at the next request), as GoTrue's do."""
    if not form.model_fields_set & {"user_metadata", "password"}:
        raise invalid([field_error("user_metadata", "give user_metadata, password or both")])
    given = "user_metadata" in form.model_fields_set
    updated = await update_own_account(
        services,
        client,
        caller,
        metadata=form.user_metadata if given else UNCHANGED,
        password=form.password,
    )
    return user_body(updated, caller.session_id)


@router.delete(
    "/user",
    status_code=204,
    summary="Delete the account: with the password, or within minutes of signing in",
    openapi_extra=documented(DeleteUser),
)
async def delete_user(
    services: ServicesDep,
    client: ClientDep,
    caller: CallerDep,
    form: Annotated[DeleteUser, Depends(body(DeleteUser))],
) -> Response:
    await delete_account(services, client, caller, form.password)
    response = Response(status_code=204)
    if services.settings.cookie.enabled:
        clear_session_cookie(services, response)
    return response
