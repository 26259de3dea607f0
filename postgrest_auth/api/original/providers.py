"""Sign-in with external providers under the original API: the browser goes to
`{prefix}/authorize?provider=…&redirect_to=…` and comes back (through the shared callback) with
the session cookie set in cookie mode, else with the tokens in the URL fragment. A signed-in
user lists, links and unlinks identities."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ...identities import linking
from ..caller import CallerDep
from ..deps import ClientDep, ServicesDep
from ..providers import TO_PROVIDER, to_provider

router = APIRouter(tags=["providers"])


def identity_body(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "provider": row["provider"],
        "email": row["email"],
        "created_at": row["created_at"].isoformat(),
        "last_sign_in_at": row["last_sign_in_at"] and row["last_sign_in_at"].isoformat(),
    }


@router.get("/providers", summary="The providers users may sign in with")
async def providers(services: ServicesDep) -> dict[str, Any]:
    configured = services.settings.providers
    return {
        "providers": [
            {"name": name, "display_name": configured[name].display_name or name}
            for name in services.providers.names()
        ]
    }


@router.get(
    "/authorize",
    summary="Start a sign-in at an external provider",
    response_model=None,
    responses=TO_PROVIDER,
)
async def authorize(
    services: ServicesDep,
    client: ClientDep,
    provider: str | None = None,
    redirect_to: str | None = None,
) -> Response:
    return await to_provider(
        services, client, provider, redirect_to, set_cookie=services.settings.cookie.enabled
    )


@router.get("/identities", summary="The caller's identities at external providers")
async def identities(services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    async with services.pool.acquire() as conn:
        rows = await services.identities.identities_of(conn, caller.user["id"])
    return {"identities": [identity_body(row) for row in rows]}


@router.get(
    "/identities/authorize",
    summary="Link another provider: the URL to send the browser to",
    response_model=None,
    responses=TO_PROVIDER,
)
async def link_identity(
    services: ServicesDep,
    client: ClientDep,
    caller: CallerDep,
    provider: str | None = None,
    redirect_to: str | None = None,
) -> Response:
    return await to_provider(
        services,
        client,
        provider,
        redirect_to,
        link=caller,
        set_cookie=services.settings.cookie.enabled,
        as_json=True,
    )


@router.delete("/identities/{identity_id}", summary="Unlink a provider")
async def unlink_identity(
    services: ServicesDep, client: ClientDep, caller: CallerDep, identity_id: str
) -> dict[str, str]:
    await linking.unlink(services, client, caller.user, identity_id)
    return {"message": "Identity unlinked"}
