"""Sign-in at an external provider, for both APIs: the redirect there (`/authorize`, served by
each API) and the one shared way back (`{prefix}/v1/callback`, the redirect URI registered at
every provider). Whatever fails ends on the frontend's `redirect_to` with `error` and
`error_description`, never on an error page of ours."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, RedirectResponse

from ..accounts.links import Challenge
from ..accounts.pkce import AuthCode
from ..errors import field_error, invalid
from ..identities import flow
from ..services import Services
from ..store import Row
from .deps import ClientDep, ServicesDep
from .fragments import redirect_with_fragment, session_fragment, with_query
from .gotrue.errors import GOTRUE
from .gotrue.redirects import redirect_target
from .grants import set_session_cookie

CALLBACK_PATH = "/v1/callback"

router = APIRouter(tags=["providers"])


async def redirect_to_provider(
    services: Services,
    provider: str | None,
    redirect_to: str | None,
    challenge: Challenge | None = None,
    link_user: Row | None = None,
    *,
    set_cookie: bool = False,
) -> str:
    """The provider's URL to send the browser to. `redirect_to` falls back to the site URL
    when not allowed (GoTrue's rule); with neither, there would be nowhere to come back to."""
    services.providers.get(provider)
    target = redirect_target(services.settings, redirect_to)
    if target is None:
        raise invalid(
            [field_error("redirect_to", "give an allowed redirect_to, or set gotrue.site_url")]
        )
    try:
        return await flow.begin(
            services, provider or "", target, challenge, link_user, set_cookie=set_cookie
        )
    except flow.FlowFailure as exc:
        return _failure_url(exc.redirect_to or target, exc)


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
)
async def callback(
    services: ServicesDep,
    client: ClientDep,
    state: str | None = None,
    code: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    try:
        result = await flow.finish(services, client, state, code, error, error_description)
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
