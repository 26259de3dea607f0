"""Who is calling: the client address (behind a trusted proxy) and cross-origin checks."""

from __future__ import annotations

import ipaddress

from fastapi import Request

from .config import Http


def client_address(request: Request, settings: Http) -> str | None:
    """The socket peer, or the configured header when the peer is a trusted proxy."""
    peer = request.client.host if request.client else None
    header = settings.client_address_header
    if header and peer in settings.trusted_proxies:
        forwarded = request.headers.get(header, "").split(",")[0].strip()
        if _is_address(forwarded):
            return forwarded
    return peer if _is_address(peer) else None


def _is_address(value: str | None) -> bool:
    try:
        ipaddress.ip_address(value or "")
    except ValueError:
        return False
    return True


def is_cross_origin(request: Request, allowed_origins: list[str]) -> bool:
    """A cookie rides on any request a browser sends; a write must come from an allowed page."""
    fetch_site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if origin is not None and origin in allowed_origins:
        return False
    if fetch_site in ("cross-site", "same-site"):
        return True
    if origin is None:  # browsers send Origin on every cross-origin write
        return False
    return origin.split("://", 1)[-1] != request.headers.get("host")
