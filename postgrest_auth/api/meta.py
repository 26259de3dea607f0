"""Public keys, liveness and readiness.

`/health` is liveness: it answers 200 whenever the process does (a restarting database is no
reason to restart the service; it serves again by itself when the database returns), and says
whether the database answers. `/ready` is readiness: 200 only when this instance should get
traffic (the database answers, its migrations are this version's, no stop under way), else 503
with Retry-After, so a balancer sends requests elsewhere meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..errors import DATABASE_RETRY_AFTER, DATABASE_UNAVAILABLE_ERRORS
from ..migrate import Migration, applied_checksums, compare, load_migrations
from ..services import Services
from .deps import ServicesDep

router = APIRouter(tags=["meta"])

# The most a probe waits for the database: probes are short (Kubernetes' default is 1 s) and
# a slow answer says as much as none.
PROBE_SECONDS = 1.0


@router.get("/.well-known/jwks.json", summary="Public keys that verify the access tokens")
async def jwks(services: ServicesDep) -> dict[str, Any]:
    return services.tokens.jwks()


async def database_answers(services: Services) -> bool:
    """Whether a pooled connection answers `select 1` within PROBE_SECONDS."""
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            async with services.pool.acquire(timeout=PROBE_SECONDS) as conn:
                await conn.fetchval("select 1")
    except DATABASE_UNAVAILABLE_ERRORS:
        return False
    return True


@router.get(
    "/health",
    summary="Liveness: 200 whenever the process answers; says whether the database does",
)
async def health(services: ServicesDep) -> dict[str, str]:
    up = await database_answers(services)
    return {"status": "ok", "database": "up" if up else "down"}


@router.get(
    "/ready",
    summary="Readiness: 200 when the database answers, migrations are current and no stop is"
    " under way; 503 with Retry-After otherwise",
    responses={503: {"description": "not ready: the body says why"}},
)
async def ready(request: Request, services: ServicesDep) -> JSONResponse:
    draining = request.app.state.drain.active
    migrations = "unknown"
    up = False
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            async with services.pool.acquire(timeout=PROBE_SECONDS) as conn:
                applied = await applied_checksums(conn, services.settings)
        current = compare(_shipped(request, services), applied).current
        up = True
        migrations = "current" if current else "behind"
    except DATABASE_UNAVAILABLE_ERRORS:
        pass
    body = {
        "status": "ready" if up and migrations == "current" and not draining else "unavailable",
        "database": "up" if up else "down",
        "migrations": migrations,
        "draining": draining,
    }
    if body["status"] == "ready":
        return JSONResponse(body)
    return JSONResponse(body, 503, headers={"Retry-After": str(DATABASE_RETRY_AFTER)})


def _shipped(request: Request, services: Services) -> list[Migration]:
    """This version's migrations, read and rendered once (a few ms of CPU), not every probe."""
    state = request.app.state
    if getattr(state, "shipped_migrations", None) is None:
        state.shipped_migrations = load_migrations(services.settings)
    return state.shipped_migrations
