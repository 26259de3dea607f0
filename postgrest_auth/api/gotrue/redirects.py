"""Where a mailed link may send the browser: `redirect_to` when the allow-list has it, else
`gotrue.site_url`. As GoTrue does, a target not allowed falls back to the site URL rather than
failing, so an attacker's redirect_to never receives a session."""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlsplit

from ...config import Settings


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    """GoTrue's globs: `*` stays within one host label or path segment (it crosses neither
    `.` nor `/`, nor `?`, `#` or `@`), `**` crosses them. So `https://*.example.com/**` is
    satisfied neither by `https://evil.test/x.example.com/` nor by `https://evil?.example.com/`."""
    parts = re.split(r"(\*\*|\*)", pattern)
    regex = "".join(
        ".*" if part == "**" else r"[^./?#@\\]*" if part == "*" else re.escape(part)
        for part in parts
    )
    return re.compile(regex)


def allowed(settings: Settings, redirect_to: str) -> bool:
    """Same origin as the site URL, or a match of an entry of `gotrue.redirect_urls` (exact,
    or a glob such as `https://app.example.com/**`)."""
    if not redirect_to.lower().startswith(("http://", "https://")) or any(
        c in redirect_to for c in "\\\r\n\t "
    ):
        return False
    site = settings.gotrue.site_url
    if site is not None and _origin(site) == _origin(redirect_to):
        return True
    return any(
        redirect_to == entry or ("*" in entry and _glob(entry).fullmatch(redirect_to))
        for entry in settings.gotrue.redirect_urls
    )


def redirect_target(settings: Settings, redirect_to: str | None) -> str | None:
    """The URL a link's verification sends the browser to, or None (answer JSON instead)."""
    if redirect_to and allowed(settings, redirect_to):
        return redirect_to
    return settings.gotrue.site_url
