"""What each kind of provider needs beyond a client id: endpoints and usual scopes. An operator
overrides any of it (`issuer`, `url`, `api_url`, `scopes`), e.g. for GitHub Enterprise or a
self-hosted GitLab."""

from __future__ import annotations

from ..config import Provider

OIDC_SCOPES = ["openid", "email", "profile"]
ISSUERS = {"google": "https://accounts.google.com", "gitlab": "https://gitlab.com"}
GITHUB_URL = "https://github.com"
GITHUB_API_URL = "https://api.github.com"
# read:user for the profile, user:email for the addresses and whether they are verified.
GITHUB_SCOPES = ["read:user", "user:email"]


def scopes(provider: Provider) -> list[str]:
    if provider.scopes is not None:
        return provider.scopes
    return GITHUB_SCOPES if provider.kind == "github" else OIDC_SCOPES


def issuer(provider: Provider) -> str | None:
    return provider.issuer or ISSUERS.get(provider.kind)


def github_urls(provider: Provider) -> tuple[str, str]:
    """The web base (authorize, access_token) and the REST API base."""
    return provider.url or GITHUB_URL, provider.api_url or GITHUB_API_URL
