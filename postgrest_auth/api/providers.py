"""Sign-in at an external provider, for both APIs: the redirect there (`/authorize`, served by
each API) and the one shared way back (`{prefix}/v1/callback`, the redirect URI registered at
every provider). Whatever fails ends on the frontend's `redirect_to` with `error` and
`error_description`, never on an error page of ours."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from ..accounts import Caller, ClientInfo
from ..accounts.links import Challenge
from ..accounts.pkce import AuthCode
from ..errors import field_error, invalid
from ..identities import flow
from ..identities.statements import FLOW_SECONDS
from ..services import Services
from .deps import ClientDep, ServicesDep
from .fragments import BACK_TO_APP, redirect_with_fragment, session_fragment, with_query
from .gotrue.errors import GOTRUE
from .gotrue.redirects import redirect_target
from .grants import set_session_cookie

CALLBACK_PATH = "/v1/callback"

router = APIRouter(tags=["providers"])

# What the OpenAPI document says of the browser's redirects (the bodies are empty).
TO_PROVIDER = {302: {"description": "On to the provider, or back to redirect_to with an error"}}


async def to_provider(
    services: Services,
    client: ClientInfo,
    provider: str | None,
    redirect_to: str | None,
    challenge: Challenge | None = None,
    link: Caller | None = None,
    *,
    set_cookie: bool = False,
    as_json: bool = False,
) -> Response:
    """Sends the browser to the provider: a 302, or `{"url": …}` for a frontend that
    navigates itself; either sets the cookie that ties the flow to this browser (a fetch
    from another origin does not keep it, so linking needs the frontend at the service's
    origin, behind the same proxy). `redirect_to` falls back to the site URL when not allowed
    (GoTrue's rule); with neither, there would be nowhere to come back to."""
    services.providers.get(provider)
    target = redirect_target(services.settings, redirect_to)
    if target is None:
        raise invalid(
            [field_error("redirect_to", "give an allowed redirect_to, or set gotrue.site_url")]
        )
    try:
        start = await flow.begin(
            services, client, provider or "", target, challenge, link, set_cookie=set_cookie
        )
    except flow.FlowFailure as exc:
        return _send(_failure_url(exc.redirect_to or target, exc), as_json)
    response = _send(start.url, as_json)
    response.set_cookie(
        start.cookie_name, start.cookie_value, max_age=FLOW_SECONDS, **_flow_cookie(services)
    )
    return response


def _send(url: str, as_json: bool) -> Response:
    return JSONResponse({"url": url}) if as_json else RedirectResponse(url, status_code=302)


def _flow_cookie(services: Services) -> dict[str, Any]:
    """The flow cookie's attributes, the same to set and to delete it: only the callback
    sees it, and Lax sends it on the provider's top-level redirect back."""
    return {
        "path": services.settings.prefix + CALLBACK_PATH,
        "secure": services.settings.cookie.secure,
        "httponly": True,
        "samesite": "lax",
    }


def _failure_url(target: str, failure: flow.FlowFailure) -> str:
    """GoTrue's shape, which auth-js reads: `error`, `error_code` (where the service refused)
    and `error_description`."""
    params = {"error": failure.error}
    if failure.code is not None:
        params["error_code"] = GOTRUE.get(failure.code, (400, str(failure.code)))[1]
    return with_query(target, **params, error_description=failure.description)


@router.get(
    CALLBACK_PATH,
    summary="Where providers send the browser back: on to redirect_to with a code, a session"
    " or an error",
    response_model=None,
    responses=BACK_TO_APP,
)
async def callback(
    services: ServicesDep,
    client: ClientDep,
    request: Request,
    state: str | None = None,
    code: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    cookie = flow.browser_cookie_name(state) if state else None
    binding = request.cookies.get(cookie) if cookie else None
    response = await _finish(services, client, state, code, error, error_description, binding)
    if cookie is not None and binding is not None:  # spent, whatever the outcome
        response.delete_cookie(cookie, **_flow_cookie(services))
    return response


async def _finish(
    services: Services,
    client: ClientInfo,
    state: str | None,
    code: str | None,
    error: str | None,
    error_description: str | None,
    binding: str | None,
) -> Response:
    try:
        result = await flow.finish(services, client, state, code, error, error_description, binding)
    except flow.FlowFailure as exc:
        if exc.redirect_to is None:
            return JSONResponse(
                {"error": exc.error, "error_description": exc.description}, status_code=400
            )  # an unknown flow and no site URL to go back to
        return RedirectResponse(_failure_url(exc.redirect_to, exc), status_code=303)
    if isinstance(result.outcome, AuthCode):
        return RedirectResponse(
            with_query(result.redirect_to, code=result.outcome.code), status_code=303
        )
    granted = result.outcome
    if result.set_cookie and granted.refresh_token is not None:
        response = RedirectResponse(result.redirect_to, status_code=303)
        set_session_cookie(services, response, granted.refresh_token)
        return response
    return redirect_with_fragment(
        result.redirect_to, session_fragment(granted, "oauth", with_refresh_token=True)
    )
