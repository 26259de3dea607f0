"""GitHub: plain OAuth 2.0 (no id_token), so the profile comes from its REST API. Only a
verified address counts: GitHub lets anyone add an address they do not own."""

from __future__ import annotations

from typing import Any

from . import presets
from .oauth import OAuthProvider, get_json
from .profile import ExternalProfile, ProviderFailure


class GitHubProvider(OAuthProvider):
    async def endpoints(self) -> tuple[str, str]:
        web, _ = presets.github_urls(self.settings)
        return web + "/login/oauth/authorize", web + "/login/oauth/access_token"

    async def profile(self, code: str, code_verifier: str, nonce: str) -> ExternalProfile:
        token = await self.exchange(code, code_verifier)
        _, api = presets.github_urls(self.settings)
        user = await get_json(api + "/user", token["access_token"], name=self.name)
        emails = await get_json(api + "/user/emails", token["access_token"], name=self.name)
        if not isinstance(user, dict) or not isinstance(user.get("id"), int):
            raise ProviderFailure("server_error", f"{self.name} answered no user")
        email = verified_email(emails if isinstance(emails, list) else [])
        return ExternalProfile(
            provider=self.name,
            subject=str(user["id"]),
            email=email,
            email_verified=email is not None,
            name=user.get("name") or user.get("login"),
            avatar_url=user.get("avatar_url"),
            data={
                "user_name": user.get("login"),
                "preferred_username": user.get("login"),
                "iss": api,
            },
        )


def verified_email(emails: list[Any]) -> str | None:
    """The primary address if verified, else the first verified one; None without one."""
    verified = [
        e for e in emails if isinstance(e, dict) and e.get("verified") is True and e.get("email")
    ]
    verified.sort(key=lambda e: e.get("primary") is not True)
    return str(verified[0]["email"]).lower() if verified else None
