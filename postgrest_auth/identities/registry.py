"""The configured providers, built once per app from `providers.*`."""

from __future__ import annotations

from ..accounts.links import public_base
from ..config import Settings, provider_secret
from ..errors import Code, ServiceError
from .github import GitHubProvider
from .oauth import OAuthProvider
from .oidc import OidcProvider


def callback_url(settings: Settings) -> str:
    """The redirect URI to register at every provider."""
    return f"{public_base(settings)}{settings.prefix}/v1/callback"


class Providers:
    def __init__(self, settings: Settings) -> None:
        redirect_uri = callback_url(settings)
        self._providers: dict[str, OAuthProvider] = {}
        for name, provider in settings.providers.items():
            if not provider.enabled:
                continue
            kind = GitHubProvider if provider.kind == "github" else OidcProvider
            self._providers[name] = kind(
                name, provider, provider_secret(name, provider), redirect_uri
            )

    def get(self, name: str | None) -> OAuthProvider:
        provider = self._providers.get(name or "")
        if provider is None:
            raise ServiceError(Code.PROVIDER_DISABLED, f"Unsupported provider: {name}")
        return provider

    def names(self) -> list[str]:
        return sorted(self._providers)
