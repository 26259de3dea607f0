"""Signing keys as joserfc keys: the one reading of a key file that configuration checks and
token signing share."""

from __future__ import annotations

from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

Key = RSAKey | ECKey | OKPKey | OctKey

# The key type each configurable algorithm signs with (ES256 and ES384 also fix the curve,
# which the algorithm checks when it signs or verifies).
KEY_TYPES: dict[str, type[RSAKey] | type[ECKey] | type[OKPKey]] = {
    "RS256": RSAKey,
    "RS384": RSAKey,
    "RS512": RSAKey,
    "ES256": ECKey,
    "ES384": ECKey,
    "ES512": ECKey,
    "EdDSA": OKPKey,
}


def read_key(algorithm: str, pem: bytes) -> RSAKey | ECKey | OKPKey:
    """The key in a PEM file for `algorithm`; ValueError when it holds no such key."""
    try:
        return KEY_TYPES[algorithm].import_key(pem)
    except Exception as exc:  # cryptography and joserfc raise several kinds for a non-key
        raise ValueError(f"not a {algorithm} key") from exc


def hmac_key(secret: str) -> OctKey:
    return OctKey.import_key(secret.encode())
