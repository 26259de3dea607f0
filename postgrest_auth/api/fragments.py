"""Redirecting a browser after a mailed link: the session or the error goes in the URL
fragment, which browsers never send to a server, so no log ever sees it (GoTrue's shape)."""

from __future__ import annotations

import time
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from fastapi.responses import RedirectResponse

from ..accounts import Grant
from ..errors import Code, ServiceError

# The OpenAPI document's word for these redirects (their bodies are empty).
BACK_TO_APP = {303: {"description": "On to redirect_to: a code, a session or an error"}}


def session_fragment(granted: Grant, type_: str, *, with_refresh_token: bool) -> dict[str, str]:
    fragment = {"access_token": granted.access_token}
    if with_refresh_token and granted.refresh_token is not None:
        fragment["refresh_token"] = granted.refresh_token
    return fragment | {
        "expires_in": str(granted.expires_in),
        "expires_at": str(int(time.time()) + granted.expires_in),
        "token_type": "bearer",
        "type": type_,
    }


def error_fragment(error: ServiceError, status: int) -> dict[str, str]:
    """`#error=access_denied&error_code=otp_expired&error_description=…`."""
    if status == 400:
        kind = "invalid_request"
    elif status in (429, 503) or error.code is Code.DATABASE_UNAVAILABLE:
        kind = "temporarily_unavailable"
    elif status >= 500:
        kind = "server_error"
    else:
        kind = "access_denied"
    return {"error": kind, "error_code": str(error.code), "error_description": error.message}


def redirect_with_fragment(url: str, fragment: dict[str, str]) -> RedirectResponse:
    """The fragment replaces any the target URL has."""
    base = url.split("#", 1)[0]
    return RedirectResponse(f"{base}#{urlencode(fragment, quote_via=quote)}", status_code=303)


def with_query(url: str, **params: str) -> str:
    """The URL with `params` added to its query (its fragment dropped)."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query, fragment=""))
