"""GoTrue's `/settings`, `/health` and JWKS: what the clients and dashboards ask first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ... import __version__
from ..deps import ServicesDep

router = APIRouter(tags=["gotrue"])

# Providers GoTrue lists; only email is served (OIDC providers come with a later issue).
PROVIDERS = (
    "anonymous_users",
    "apple",
    "azure",
    "bitbucket",
    "discord",
    "facebook",
    "figma",
    "fly",
    "github",
    "gitlab",
    "google",
    "keycloak",
    "kakao",
    "linkedin_oidc",
    "notion",
    "phone",
    "slack_oidc",
    "spotify",
    "twitch",
    "twitter",
    "workos",
    "zoom",
)


@router.get("/settings", summary="What this server offers, in GoTrue's shape")
async def settings(services: ServicesDep) -> dict[str, Any]:
    config = services.settings
    return {
        "external": {
            "email": True,
            **dict.fromkeys(PROVIDERS, False),
            **dict.fromkeys(services.providers.names(), True),
        },
        "disable_signup": config.roles.per_user,  # compat mode needs a username per account
        "mailer_autoconfirm": not config.email.confirm,
        "phone_autoconfirm": False,
        "sms_provider": "",
        "saml_enabled": False,
    }


@router.get("/health", summary="Liveness in GoTrue's shape: 200 whenever the process answers")
async def health() -> dict[str, str]:
    """As GoTrue's: no database query (a restarting database is no reason to restart the
    service); `/auth/health` says whether it answers, `/auth/ready` whether to send traffic."""
    return {
        "version": __version__,
        "name": "postgrest-auth",
        "description": "postgrest-auth serves GoTrue's API for the Supabase clients",
    }


@router.get("/.well-known/jwks.json", summary="Public keys that verify the access tokens")
async def jwks(services: ServicesDep) -> dict[str, Any]:
    return services.tokens.jwks()
