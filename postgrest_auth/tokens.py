"""JWT minting and verification: HS256 from `secret`, or asymmetric keys published as JWKS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import GuestProtocol
from joserfc.jwt import JWTClaimsRegistry

from . import jwt_keys
from .config import Settings

ACCESS = "access"
RESET = "reset"


class InvalidToken(Exception):
    """Signature, expiry, type or shape is wrong; the message is safe to show."""


@dataclass(frozen=True)
class Key:
    kid: str | None
    algorithm: str
    key: jwt_keys.Key  # verifies; signs too when private (or the HS secret)
    signs: bool
    material: str  # what the derived keys (email binding, codes, rotation) are made from


def _load_keys(settings: Settings) -> list[Key]:
    keys: list[Key] = []
    for entry in settings.jwt.keys:
        path = entry.private_key_file or entry.public_key_file
        if path is None:
            raise ValueError(f"jwt.keys[{entry.kid}]: needs private_key_file or public_key_file")
        key = jwt_keys.read_key(entry.algorithm, path.read_bytes())
        material = ""
        if key.is_private:  # its own bytes are the secret part
            der = key.private_key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
            material = der.hex()
        keys.append(Key(entry.kid, entry.algorithm, key, key.is_private, material))
    if settings.secret is not None:
        secret = settings.secret.get_secret_value()
        keys.append(Key(None, "HS256", jwt_keys.hmac_key(secret), True, secret))
    return keys


# Signature and expiry are what every token is checked by; `iat` and `nbf`, when present,
# must not lie in the future.
REQUIRE_EXPIRY = JWTClaimsRegistry(exp={"essential": True})


class TokenIssuer:
    """Mints the service's tokens and verifies them (and those of the Node original)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = _load_keys(settings)
        self.signer = next(k for k in self.keys if k.signs)
        self.algorithms = sorted({k.algorithm for k in self.keys})
        self._signing_header = {"alg": self.signer.algorithm, "typ": "JWT"}
        if self.signer.kid:
            self._signing_header["kid"] = self.signer.kid
        material = self.signer.material
        self._binding_key = hashlib.sha256(b"postgrest-auth/email:" + material.encode()).digest()
        self._code_key = hashlib.sha256(b"postgrest-auth/code:" + material.encode()).digest()
        self._rotation_key = hashlib.sha256(
            b"postgrest-auth/refresh-rotation:" + material.encode()
        ).digest()

    def access_token(self, claims: dict[str, Any]) -> str:
        """Signs the claims the database built (`access_claims()` in SQL, the one definition
        `auth.authenticate` shares), adding the token's own time and id."""
        now = int(time.time())
        return self.sign(
            {
                **claims,
                "iat": now,
                "exp": now + self.settings.payload.exp,
                "jti": str(uuid.uuid4()),
            }
        )

    def reset_token(self, user: dict[str, Any]) -> str:
        """No `role`: PostgREST treats it as anonymous and the pre-request refuses its `typ`.

        Bound to the password (`count`) and to the address it was mailed to (`eml`), so it dies
        when either changes.
        """
        now = int(time.time())
        return self.sign(
            {
                "iss": self.settings.payload.iss,
                "iat": now,
                "exp": now + self.settings.email.reset_token_exp,
                "jti": str(uuid.uuid4()),
                "sub": str(user["uid"]),
                "count": user["token_count"],
                "eml": self.email_fingerprint(user["email"]),
                "typ": RESET,
            }
        )

    def email_fingerprint(self, email: str | None) -> str:
        """Binds a reset token to the address it was mailed to. Keyed, so the readable token
        does not let anyone test guesses of the address against it."""
        return hmac.new(self._binding_key, (email or "").encode(), hashlib.sha256).hexdigest()[:32]

    def code_digest(self, message: str) -> bytes:
        """A mailed 6-digit code as stored. Keyed: a plain hash of one of a million codes is
        found offline in a second, so a copy of the table must not be enough to read them."""
        return hmac.new(self._code_key, message.encode(), hashlib.sha256).digest()

    def next_session_token(self, token: str) -> str:
        """The token a refresh with `token` rotates to. Derived, not random, so a retired token
        presented again moments later (two tabs) can be answered with the current one while
        only hashes are stored; keyed, so neither a stolen token nor a copy of the database
        tells the next one."""
        digest = hmac.new(self._rotation_key, token.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, claims: dict[str, Any]) -> str:
        algorithms = [self.signer.algorithm]
        return jwt.encode(self._signing_header, claims, self.signer.key, algorithms=algorithms)

    def decode(self, token: str, expected_type: str) -> dict[str, Any]:
        """Verified claims of one of our tokens of `expected_type`, or of a Node original token."""
        claims = self.decode_key(token)
        if claims.get("typ", ACCESS if is_node_token(claims) else None) != expected_type:
            raise InvalidToken("the token is of the wrong type")
        if not isinstance(claims.get("count"), int):
            raise InvalidToken("the token is not valid")
        return claims

    def decode_key(self, token: str) -> dict[str, Any]:
        """Verified claims, by signature and expiry only: what a long-lived API key
        (`postgrest-auth keys`) is checked by, having no count, type or session."""
        try:
            claims: dict[str, Any] = jwt.decode(token, self._key_for, self.algorithms).claims
            REQUIRE_EXPIRY.validate(claims)
            return claims
        except ExpiredTokenError:
            raise InvalidToken("the token has expired") from None
        except (JoseError, ValueError, TypeError):  # malformed parts, JSON, or header
            raise InvalidToken("the token is not valid") from None

    def api_key(self, role: str, days: int) -> str:
        """A key for a role (anon, service): what Supabase calls the anon and service_role
        keys. supabase-js sends the anon key as the bearer of signed-out PostgREST requests;
        the service key opens the admin API."""
        now = int(time.time())
        return self.sign(
            {"iss": self.settings.payload.iss, "role": role, "iat": now, "exp": now + days * 86400}
        )

    def _key_for(self, token: GuestProtocol) -> jwt_keys.Key:
        """The configured key the token's header names (kid and alg), else none at all."""
        header = token.headers()
        kid = header.get("kid")
        for key in self.keys:
            if key.kid == kid and key.algorithm == header.get("alg"):
                return key.key
        raise InvalidToken("the token is not valid")

    def jwks(self) -> dict[str, Any]:
        """Public keys for PostgREST's jwt-secret and for other verifiers; no HS secret, ever."""
        published = []
        for key in self.keys:
            if key.kid is None:
                continue
            jwk = key.key.as_dict(private=False)
            published.append({**jwk, "kid": key.kid, "alg": key.algorithm, "use": "sig"})
        return {"keys": published}


def is_node_token(claims: dict[str, Any]) -> bool:
    """The Node original put `sub: "access"` and the username in `aud`."""
    return claims.get("sub") == "access" and isinstance(claims.get("aud"), str)
