"""Who is calling: the client address (behind a trusted proxy), and from which origin."""

from __future__ import annotations

import functools
import ipaddress

from fastapi import Request

from ..config import Http


def client_address(request: Request, settings: Http) -> str | None:
    """The socket peer, or what the configured header says when the peer is a trusted proxy.

    A list header (X-Forwarded-For) is read from the right: each proxy appends the address it
    saw, so the first one that is not a trusted proxy is the client; the left end is whatever
    the client chose to send.
    """
    peer = plain_address(request.client.host if request.client else None)
    header = settings.client_address_header
    if not header or not settings.is_trusted_proxy(peer):
        return peer
    for hop in reversed(request.headers.get(header, "").split(",")):
        address = plain_address(hop.strip())
        if address is None:
            break
        if not settings.is_trusted_proxy(address):
            return address
    return peer


@functools.lru_cache(maxsize=4096)
def plain_address(value: str | None) -> str | None:
    """Cached: parsing costs tens of microseconds per request, and few peers come back often.

    The address in canonical form (an IPv4-mapped IPv6 address, a dual-stack socket's peer,
    as IPv4), or None when it is not an address."""
    try:
        ip = ipaddress.ip_address(value or "")
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


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
