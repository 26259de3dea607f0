"""OpenID Connect providers (any certified provider, Google, GitLab): discovery, and the
id_token validated as the specification asks — signature from the provider's JWKS, `iss`,
`aud`, `exp`, `nonce` — before anything in it is believed."""

from __future__ import annotations

import time
from typing import Any

from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from . import presets
from .oauth import OAuthProvider, get_json
from .profile import ExternalProfile, ProviderFailure

# Discovery and keys are re-read after this; an unknown `kid` re-reads the keys at once.
METADATA_SECONDS = 3600
# Clock difference tolerated between the provider and us.
LEEWAY_SECONDS = 60
SIGNATURE_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class OidcProvider(OAuthProvider):
    _metadata: dict[str, Any] | None = None
    _metadata_at = 0.0
    _keys: KeySet | None = None

    @property
    def issuer(self) -> str:
        issuer = presets.issuer(self.settings)
        assert issuer is not None  # config.check_providers
        return issuer

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_SECONDS:
            document = await get_json(
                self.issuer.rstrip("/") + "/.well-known/openid-configuration", name=self.name
            )
            if not isinstance(document, dict) or document.get("issuer") != self.issuer:
                raise ProviderFailure(
                    "server_error", f"{self.name}'s discovery document names another issuer"
                )
            self._metadata, self._metadata_at, self._keys = document, time.monotonic(), None
        return self._metadata

    async def endpoints(self) -> tuple[str, str]:
        document = await self.metadata()
        try:
            return document["authorization_endpoint"], document["token_endpoint"]
        except KeyError as exc:
            raise ProviderFailure("server_error", f"{self.name}'s discovery lacks {exc}") from exc

    async def _key_set(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            document = await self.metadata()
            if not isinstance(document.get("jwks_uri"), str):
                raise ProviderFailure("server_error", f"{self.name}'s discovery lacks jwks_uri")
            jwks = await get_json(document["jwks_uri"], name=self.name)
            try:
                self._keys = KeySet.import_key_set(jwks)
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise ProviderFailure("server_error", f"{self.name}'s keys are unusable") from exc
        return self._keys

    async def verified_claims(self, id_token: str, nonce: str, access_token: str) -> dict[str, Any]:
        """The id_token's claims once signature, issuer, audience, times and nonce hold."""
        document = await self.metadata()
        offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        # Public-key signatures only: never `none`, nor an HMAC keyed with the client secret.
        algorithms = [a for a in offered if a in SIGNATURE_ALGORITHMS] or ["RS256"]
        try:
            try:
                token = jwt.decode(id_token, await self._key_set(), algorithms=algorithms)
            except InvalidKeyIdError:  # the provider rotated its keys
                token = jwt.decode(id_token, await self._key_set(True), algorithms=algorithms)
            claims = CodeIDToken(
                token.claims,
                token.header,
                {
                    "iss": {"essential": True, "value": self.issuer},
                    "aud": {"essential": True, "value": self.settings.client_id},
                },
                {
                    "nonce": nonce,
                    "client_id": self.settings.client_id,
                    "access_token": access_token,
                },
            )
            claims.validate(leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError) as exc:
            raise ProviderFailure(
                "invalid_request", f"the id_token from {self.name} is not valid"
            ) from exc
        return dict(claims)

    async def profile(self, code: str, code_verifier: str, nonce: str) -> ExternalProfile:
        token = await self.exchange(code, code_verifier)
        if not isinstance(token.get("id_token"), str):
            raise ProviderFailure("server_error", f"{self.name} sent no id_token")
        claims = await self.verified_claims(token["id_token"], nonce, token["access_token"])
        document = await self.metadata()
        if "email" not in claims and document.get("userinfo_endpoint"):
            userinfo = await get_json(
                document["userinfo_endpoint"], token["access_token"], name=self.name
            )
            # The userinfo's sub must be the id_token's (OIDC Core 5.3.2).
            if isinstance(userinfo, dict) and userinfo.get("sub") == claims["sub"]:
                claims = {**userinfo, **claims}
        email = claims.get("email")
        return ExternalProfile(
            provider=self.name,
            subject=str(claims["sub"]),
            email=email.lower() if isinstance(email, str) and email else None,
            email_verified=claims.get("email_verified") in (True, "true"),
            name=claims.get("name") or claims.get("nickname") or claims.get("preferred_username"),
            avatar_url=claims.get("picture"),
            data={k: v for k, v in claims.items() if k not in ("nonce", "at_hash", "aud")},
        )
