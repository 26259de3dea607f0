"""The OAuth 2.0 part every provider shares: Authlib's client builds the authorization URL
(with our PKCE S256 challenge) and trades the code for tokens.

Authlib's client and its HTTP library are imported when a provider is first used: ~13 MB in
every worker otherwise, for a feature many deployments leave off."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import Provider
from . import presets
from .profile import ProviderFailure

if TYPE_CHECKING:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

# A provider that does not answer within this is treated as down.
TIMEOUT_SECONDS = 10.0


class OAuthProvider:
    """One configured provider; subclasses turn its tokens into a profile."""

    def __init__(self, name: str, settings: Provider, secret: str, redirect_uri: str) -> None:
        self.name = name
        self.settings = settings
        self.redirect_uri = redirect_uri
        self._secret = secret

    def _client(self) -> AsyncOAuth2Client:
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        return AsyncOAuth2Client(
            client_id=self.settings.client_id,
            client_secret=self._secret,
            scope=" ".join(presets.scopes(self.settings)),
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            timeout=TIMEOUT_SECONDS,
        )

    async def endpoints(self) -> tuple[str, str]:
        """The authorization and token endpoints."""
        raise NotImplementedError

    async def authorization_url(self, state: str, nonce: str, code_verifier: str) -> str:
        authorize, _ = await self.endpoints()
        async with self._client() as client:
            url, _ = client.create_authorization_url(
                authorize, state=state, nonce=nonce, code_verifier=code_verifier
            )
        return url

    async def exchange(self, code: str, code_verifier: str) -> dict[str, Any]:
        """The provider's token answer for the code it sent back."""
        import httpx2
        from authlib.integrations.httpx_client import OAuthError

        _, token_endpoint = await self.endpoints()
        async with self._client() as client:
            try:
                token = await client.fetch_token(
                    token_endpoint, code=code, code_verifier=code_verifier
                )
            except OAuthError as exc:
                raise ProviderFailure(
                    "server_error", f"{self.name} refused the code: {exc.error}"
                ) from exc
            except httpx2.HTTPError as exc:
                raise unreachable(self.name) from exc
            except ValueError as exc:  # an answer that is not JSON: an error page
                raise ProviderFailure(
                    "server_error", f"{self.name} answered the code with no token"
                ) from exc
        if not token.get("access_token"):
            raise ProviderFailure("server_error", f"{self.name} sent no access token")
        return dict(token)

    async def profile(self, code: str, code_verifier: str, nonce: str) -> Any:
        raise NotImplementedError


def unreachable(name: str) -> ProviderFailure:
    return ProviderFailure("server_error", f"{name} could not be reached; try again later")


async def get_json(url: str, access_token: str | None = None, name: str = "") -> Any:
    """GET a provider's JSON (discovery, keys, user endpoints); failures are the provider's."""
    import httpx2

    headers = {"Accept": "application/json"}
    if access_token is not None:
        headers["Authorization"] = f"Bearer {access_token}"
    try:
        async with httpx2.AsyncClient(timeout=TIMEOUT_SECONDS) as http:
            answer = await http.get(url, headers=headers)
    except httpx2.HTTPError as exc:
        raise unreachable(name) from exc
    if answer.status_code != 200:
        raise ProviderFailure("server_error", f"{name} answered {answer.status_code}")
    try:
        return answer.json()
    except ValueError as exc:
        raise ProviderFailure("server_error", f"{name} answered no JSON") from exc
