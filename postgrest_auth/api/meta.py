"""Public keys and health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .deps import ServicesDep

router = APIRouter(tags=["meta"])


@router.get("/.well-known/jwks.json", summary="Public keys that verify the access tokens")
async def jwks(services: ServicesDep) -> dict[str, Any]:
    return services.tokens.jwks()


@router.get("/health", summary="200 when the database answers")
async def health(services: ServicesDep) -> dict[str, str]:
    async with services.pool.acquire() as conn:
        await conn.fetchval("select 1")
    return {"status": "ok"}
