"""Where a mailed link may send the browser: `redirect_to` when the allow-list has it, else
`gotrue.site_url`. As GoTrue does, a target not allowed falls back to the site URL rather than
failing, so an attacker's redirect_to never receives a session."""

from __future__ import annotations

from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from ...config import Settings


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def allowed(settings: Settings, redirect_to: str) -> bool:
    """Same origin as the site URL, or a match of an entry of `gotrue.redirect_urls` (exact,
    or a glob such as `https://app.example.com/*`)."""
    if not redirect_to.lower().startswith(("http://", "https://")) or any(
        c in redirect_to for c in "\\\r\n\t "
    ):
        return False
    site = settings.gotrue.site_url
    if site is not None and _origin(site) == _origin(redirect_to):
        return True
    return any(
        redirect_to == entry or ("*" in entry and fnmatchcase(redirect_to, entry))
        for entry in settings.gotrue.redirect_urls
    )


def redirect_target(settings: Settings, redirect_to: str | None) -> str | None:
    """The URL a link's verification sends the browser to, or None (answer JSON instead)."""
    if redirect_to and allowed(settings, redirect_to):
        return redirect_to
    return settings.gotrue.site_url
