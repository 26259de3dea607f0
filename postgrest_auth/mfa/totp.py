"""TOTP (RFC 6238) as authenticator apps compute it: 6 digits, 30-second steps, SHA-1.
A code is accepted one step early or late (clocks drift) and only for a step later than the
last accepted one, so a code seen over a shoulder cannot be replayed."""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def matching_step(secret: str, code: str, now: datetime, after: int | None) -> int | None:
    """The step (within ±1 of now) whose code this is, if later than `after`; else None."""
    code = code.strip()
    if len(code) != 6 or not (code.isascii() and code.isdigit()):  # not "١٢٣٤٥٦"
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    found = None
    for step in (current - 1, current, current + 1):
        # Every candidate is compared, so the time taken does not tell which one matched.
        if hmac.compare_digest(totp.generate_otp(step), code) and (after is None or step > after):
            found = step
    return found
