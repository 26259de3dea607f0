"""Second factors under the original API (`{prefix}/factors/…`), bearer token or session
cookie: a verified code answers the original token body (in cookie mode the new session token
goes into the cookie)."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from ...accounts import Grant
from ...services import Services
from ..caller import require_caller
from ..factor_routes import factor_router
from ..grants import token_body


async def _tokens(services: Services, response: Response, granted: Grant) -> dict[str, Any]:
    return token_body(services, response, granted)


router = factor_router(require_caller, _tokens, "factors")
