"""auth-js `mfa.*` under the GoTrue API: a verified code answers GoTrue's session JSON, its
user with the factors (what `mfa.getAuthenticatorAssuranceLevel` reads)."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from ...accounts import Grant
from ...services import Services
from ..factor_routes import factor_router
from .caller import require_bearer_caller
from .shapes import full_session_json


async def _session(services: Services, response: Response, granted: Grant) -> dict[str, Any]:
    return await full_session_json(services, granted)


router = factor_router(require_bearer_caller, _session, "gotrue")
