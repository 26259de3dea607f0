"""Sign-in with external providers in GoTrue's shapes: `signInWithOAuth` (GET /authorize),
`linkIdentity` and `unlinkIdentity` of auth-js. The callback is shared (api/providers.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ...accounts.pkce import challenge_of
from ...identities import linking
from ..deps import ClientDep, ServicesDep
from ..providers import TO_PROVIDER, to_provider
from .caller import BearerCallerDep
from .shapes import full_user_json

router = APIRouter(tags=["gotrue"])


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
    code_challenge: str | None = None,
    code_challenge_method: str | None = None,
    skip_http_redirect: bool = False,
) -> Response:
    return await to_provider(
        services,
        client,
        provider,
        redirect_to,
        challenge_of(code_challenge, code_challenge_method),
        as_json=skip_http_redirect,
    )


@router.get(
    "/user/identities/authorize",
    summary="Link another provider to the signed-in account",
    response_model=None,
    responses=TO_PROVIDER,
)
async def link_identity(
    services: ServicesDep,
    client: ClientDep,
    caller: BearerCallerDep,
    provider: str | None = None,
    redirect_to: str | None = None,
    code_challenge: str | None = None,
    code_challenge_method: str | None = None,
    skip_http_redirect: bool = False,
) -> Response:
    """auth-js `linkIdentity` asks for the URL as JSON (`skip_http_redirect`)."""
    return await to_provider(
        services,
        client,
        provider,
        redirect_to,
        challenge_of(code_challenge, code_challenge_method),
        caller,
        as_json=skip_http_redirect,
    )


@router.delete("/user/identities/{identity_id}", summary="Unlink a provider from the account")
async def unlink_identity(
    services: ServicesDep, client: ClientDep, caller: BearerCallerDep, identity_id: str
) -> dict[str, Any]:
    user = await linking.unlink(services, client, caller.user, identity_id)
    return await full_user_json(services, user)
