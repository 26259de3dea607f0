"""The two redirects of a sign-in at a provider, with no web session: `begin` keeps what it
promised the provider (state, nonce, our PKCE verifier, where to return) in the flow-state
table and answers the provider's URL; `finish`, at the callback, takes that row back once,
checks everything the provider returns, and yields the session (or, for a frontend that
sent a PKCE challenge, an authorization code for it)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from ..accounts import Caller
from ..accounts.audit import Event, record
from ..accounts.context import ClientInfo
from ..accounts.grants import Grant, start_session
from ..accounts.links import Challenge
from ..accounts.pkce import AuthCode, issue_auth_code
from ..errors import DATABASE_UNAVAILABLE_ERRORS, Code, ServiceError
from ..mfa.session_level import require_aal2_if_enrolled
from ..services import Services
from .linking import account_for
from .profile import ProviderFailure

log = logging.getLogger(__name__)
# GoTrue's amr method for a sign-in at an external provider.
METHOD = "oauth"
# A provider's error_description is shown on the frontend's page: keep it short.
MAX_DESCRIPTION = 200
# What a provider may say at the callback (RFC 6749 4.1.2.1, OpenID Connect Core 3.1.2.6);
# anything else is passed on as server_error.
PROVIDER_ERRORS = frozenset(
    {
        "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type",
        "invalid_scope", "server_error", "temporarily_unavailable", "interaction_required",
        "login_required", "account_selection_required", "consent_required",
        "invalid_request_uri", "invalid_request_object", "request_not_supported",
        "request_uri_not_supported", "registration_not_supported",
    }
)  # fmt: skip


class FlowFailure(Exception):
    """Ends on `redirect_to` with `error` (an OAuth error kind), `error_description` and,
    where the service refused rather than the provider, `code` (None for `redirect_to`: we do
    not know where the flow came from, so there is nowhere safe to send the browser)."""

    def __init__(
        self, redirect_to: str | None, error: str, description: str, code: Code | None = None
    ) -> None:
        super().__init__(description)
        self.redirect_to = redirect_to
        self.error = error
        self.description = description[:MAX_DESCRIPTION]
        self.code = code

    @classmethod
    def refused(cls, redirect_to: str, exc: ServiceError) -> FlowFailure:
        kind = (
            "temporarily_unavailable"
            if exc.code in (Code.DATABASE_UNAVAILABLE, Code.RATE_LIMITED)
            else "access_denied"
        )
        return cls(redirect_to, kind, exc.message, exc.code)


@dataclass(frozen=True)
class FlowStart:
    """Where to send the browser, and the cookie that ties the flow to it: the callback
    refuses a browser without it, so a flow cannot be handed to someone else."""

    url: str
    cookie_name: str
    cookie_value: str


@dataclass(frozen=True)
class FlowResult:
    redirect_to: str
    outcome: Grant | AuthCode
    set_cookie: bool


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def browser_cookie_name(state: str) -> str:
    """One cookie per flow, named after its state, so flows in two tabs do not collide."""
    return "pa-flow-" + _digest(state)[:6].hex()


async def begin(
    services: Services,
    client: ClientInfo,
    provider_name: str,
    redirect_to: str,
    challenge: Challenge | None = None,
    link: Caller | None = None,
    set_cookie: bool = False,
) -> FlowStart:
    """The provider's authorization URL; `redirect_to` must already be allow-listed. Linking
    to an account with a second factor needs a session that proved it."""
    provider = services.providers.get(provider_name)
    async with services.pool.acquire() as conn:
        await services.limiter.hit_address(conn, "authorize", client.address)
        if link is not None:
            await require_aal2_if_enrolled(services, conn, link, "link an identity")
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    code_verifier, binding = secrets.token_urlsafe(48), secrets.token_urlsafe(32)
    try:
        url = await provider.authorization_url(state, nonce, code_verifier)
    except ProviderFailure as exc:
        raise FlowFailure(redirect_to, exc.error, exc.description) from exc
    async with services.pool.acquire() as conn:
        await services.identities.save_flow(
            conn,
            _digest(state),
            provider.name,
            nonce,
            code_verifier,
            redirect_to,
            (challenge.code_challenge, challenge.method) if challenge else None,
            link.user["id"] if link is not None else None,
            set_cookie,
            _digest(binding),
        )
    return FlowStart(url, browser_cookie_name(state), binding)


async def finish(
    services: Services,
    client: ClientInfo,
    state: str | None,
    code: str | None,
    error: str | None = None,
    error_description: str | None = None,
    binding: str | None = None,
) -> FlowResult:
    """Everything that can go wrong raises FlowFailure, never anything else. `binding` is
    the value of the browser's cookie named after the state."""
    site_url = services.settings.gotrue.site_url
    try:
        async with services.pool.acquire() as conn:
            await services.limiter.hit_address(conn, "callback", client.address)
            flow = await services.identities.take_flow(conn, _digest(state)) if state else None
    except ServiceError as exc:  # too many callbacks from this address
        raise FlowFailure.refused(site_url, exc) from exc
    except DATABASE_UNAVAILABLE_ERRORS as exc:
        raise _unavailable(site_url) from exc
    if flow is None:
        raise FlowFailure(
            site_url,
            "invalid_request",
            "The sign-in is unknown or was already used; start again",
            Code.BAD_OAUTH_STATE,
        )
    redirect_to = flow["redirect_to"]
    if not flow["live"]:
        raise FlowFailure(
            redirect_to, "invalid_request", "The sign-in took too long; start again",
            Code.BAD_OAUTH_STATE,
        )  # fmt: skip
    if binding is None or not hmac.compare_digest(_digest(binding), bytes(flow["browser_hash"])):
        raise FlowFailure(
            redirect_to, "invalid_request",
            "The sign-in began in another browser, or this one refused its cookie; start again",
            Code.BAD_OAUTH_STATE,
        )  # fmt: skip
    if error is not None:
        raise FlowFailure(
            redirect_to,
            error if error in PROVIDER_ERRORS else "server_error",
            error_description or "The provider refused",
        )
    if not code:
        raise FlowFailure(redirect_to, "invalid_request", "The provider sent no code")
    try:
        provider = services.providers.get(flow["provider"])
        profile = await provider.profile(code, flow["code_verifier"], flow["nonce"])
    except ProviderFailure as exc:
        await _record_failure(services, client, flow["provider"], exc.error)
        raise FlowFailure(redirect_to, exc.error, exc.description) from exc
    except ServiceError as exc:  # the provider is no longer configured
        raise FlowFailure.refused(redirect_to, exc) from exc
    try:
        async with services.pool.acquire() as conn, conn.transaction():
            user = await account_for(services, conn, client, profile, flow["link_user_id"])
            await services.store.record_sign_in(conn, user["id"])
            await record(
                services, conn, Event.SIGNED_IN, user["id"], client,
                method=METHOD, provider=profile.provider,
            )  # fmt: skip
            if flow["code_challenge"] is not None:
                challenge = Challenge(flow["code_challenge"], flow["code_challenge_method"])
                outcome: Grant | AuthCode = await issue_auth_code(
                    services, conn, user, challenge, METHOD
                )
            else:
                outcome = await start_session(services, conn, user, client, METHOD)
    except ServiceError as exc:
        await _record_failure(services, client, profile.provider, str(exc.code))
        raise FlowFailure.refused(redirect_to, exc) from exc
    except DATABASE_UNAVAILABLE_ERRORS as exc:
        raise _unavailable(redirect_to) from exc
    return FlowResult(redirect_to, outcome, flow["set_cookie"])


def _unavailable(redirect_to: str | None) -> FlowFailure:
    log.warning("sign-in at a provider: the database is unavailable")
    return FlowFailure(
        redirect_to, "temporarily_unavailable", "The sign-in could not be finished; try again"
    )


async def _record_failure(services: Services, client: ClientInfo, provider: str, why: str) -> None:
    """Best effort: a database that is down must not hide the failure being reported."""
    log.info("sign-in with %s failed: %s", provider, why)
    try:
        async with services.pool.acquire() as conn:
            await record(
                services, conn, Event.PROVIDER_SIGN_IN_FAILED, None, client, provider=provider,
                reason=why,
            )  # fmt: skip
    except DATABASE_UNAVAILABLE_ERRORS:
        log.warning("sign-in with %s: its failure could not be audited", provider)
