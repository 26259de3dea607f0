"""FastAPI dependencies shared by the adapters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..accounts import ClientInfo
from ..services import Services
from .client import client_address


async def get_services(request: Request) -> Services:
    """Async on purpose: a sync dependency would cost a thread-pool hop per request."""
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_client_info(request: Request, services: ServicesDep) -> ClientInfo:
    """What the operations record of the client: its address and user agent."""
    return ClientInfo(
        address=client_address(request, services.settings.http),
        user_agent=(request.headers.get("user-agent") or "")[:512] or None,
    )


ClientDep = Annotated[ClientInfo, Depends(get_client_info)]
