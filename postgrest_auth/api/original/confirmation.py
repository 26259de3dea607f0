"""Mailing a confirmation again: the same answer for every address."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends
from pydantic import BaseModel

from ...accounts import confirmation
from ...accounts.confirmation import ResendType
from ...addresses import EmailAddress
from ..deps import ClientDep, ServicesDep
from ..forms import body, documented

router = APIRouter(tags=["email"])


class Resend(BaseModel):
    type: ResendType
    email: EmailAddress


@router.post(
    "/resend",
    summary="Mail the sign-up or address-change confirmation again (a new link and code)",
    openapi_extra=documented(Resend),
)
async def resend(
    services: ServicesDep,
    client: ClientDep,
    background: BackgroundTasks,
    form: Annotated[Resend, Depends(body(Resend))],
) -> dict[str, str]:
    follow_up = await confirmation.resend(services, client, form.type, form.email)
    background.add_task(services.afterwards.detach, follow_up, "resend")
    return {"message": "Confirmation email sent"}
