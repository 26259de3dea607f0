"""Cookie mode: every write must come from an allowed page."""

from __future__ import annotations

from fastapi import Request

from ..errors import Code, ServiceError
from .client import is_cross_origin
from .deps import ServicesDep

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


async def refuse_cross_origin_writes(request: Request, services: ServicesDep) -> None:
    """In cookie mode, every write to the service must come from an allowed page: not only
    those that use the cookie, but also those that set it (a forged login is CSRF too)."""
    settings = services.settings
    if (
        settings.cookie.enabled
        and request.method not in SAFE_METHODS
        and is_cross_origin(request, settings.http.cors_origins)
    ):
        raise ServiceError(Code.CROSS_ORIGIN, "Writes in cookie mode must come from this site")
