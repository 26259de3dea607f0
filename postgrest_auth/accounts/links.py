"""Where a mailed link points: the one definition of its format.

Each API has its own verify endpoint (the original API `{prefix}/verify`, the GoTrue-compatible
one `{prefix}/v1/verify`), so the operations that mail a secret take a `VerifyLink` from their
adapter and hand it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from ..config import Settings


@dataclass(frozen=True)
class Challenge:
    """A PKCE challenge (RFC 7636) the client that asked for a mail bound to its link."""

    code_challenge: str
    method: str  # s256 or plain


@dataclass(frozen=True)
class VerifyLink:
    """The verify endpoint a mailed link opens (a path under the prefix), where that endpoint
    sends the browser afterwards (GoTrue's `redirect_to`), if anywhere, and the PKCE challenge
    that makes opening it yield an authorization code instead of a session."""

    path: str = "/verify"
    redirect_to: str | None = None
    challenge: Challenge | None = None


ORIGINAL = VerifyLink()


def public_base(settings: Settings) -> str:
    """Where clients reach the service: `public_url`, else the address it listens on."""
    if settings.public_url:
        return settings.public_url
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"


def verify_url(settings: Settings, link: VerifyLink, token_hash: str, kind: str) -> str:
    """`{public_url}{prefix}{path}?token_hash=…&type=…[&redirect_to=…]`."""
    query = {"token_hash": token_hash, "type": kind}
    if link.redirect_to:
        query["redirect_to"] = link.redirect_to
    return f"{public_base(settings)}{settings.prefix}{link.path}?{urlencode(query)}"
