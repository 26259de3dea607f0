"""PKCE (RFC 7636) for the mailed flows: a link bound to a client's challenge yields a
short-lived, single-use authorization code, which only the holder of the verifier can exchange
for a session. Codes are stored as SHA-256 only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from ..errors import Code, ServiceError, field_error, invalid
from ..services import Services
from ..store import Connection, Row
from .audit import Event, record
from .context import ClientInfo
from .grants import Grant, start_session
from .links import Challenge

# GoTrue's flow state lives five minutes: the browser comes back from the link at once.
AUTH_CODE_SECONDS = 300
# RFC 7636: 43 to 128 characters of the unreserved set, for the verifier and the challenge.
PKCE_STRING = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
METHODS = ("s256", "plain")


@dataclass(frozen=True)
class AuthCode:
    """What opening a PKCE-bound link gives: a code for `POST /token?grant_type=pkce`."""

    code: str


def challenge_of(code_challenge: str | None, method: str | None) -> Challenge | None:
    """The challenge a request sent, checked; None when it sent none."""
    if code_challenge is None and method is None:
        return None
    method = (method or "").lower()
    if code_challenge is None or not PKCE_STRING.match(code_challenge) or method not in METHODS:
        raise invalid(
            [
                field_error(
                    "code_challenge",
                    "give code_challenge (43 to 128 characters) and code_challenge_method"
                    " (s256 or plain) together",
                )
            ],
            "PKCE challenge is not valid",
        )
    return Challenge(code_challenge, method)


def _digest(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


async def issue_auth_code(
    services: Services, conn: Connection, user: Row, challenge: Challenge, method: str
) -> AuthCode:
    """In the caller's transaction (the one that spent the mailed secret)."""
    code = secrets.token_urlsafe(32)
    await services.store.save_flow_state(
        conn,
        _digest(code),
        user["id"],
        challenge.code_challenge,
        challenge.method,
        method,
        AUTH_CODE_SECONDS,
    )
    return AuthCode(code)


def _verifier_matches(verifier: str, challenge: str, method: str) -> bool:
    if method == "s256":
        digest = hashlib.sha256(verifier.encode()).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    else:
        computed = verifier
    return hmac.compare_digest(computed.encode(), challenge.encode())


async def exchange_code(
    services: Services, client: ClientInfo, auth_code: str, code_verifier: str
) -> Grant:
    """The session a code stands for, once: the code is gone whether the verifier is right
    or not, so a stolen code cannot be tried twice."""
    if not PKCE_STRING.match(code_verifier):
        raise invalid([field_error("code_verifier", "must be 43 to 128 unreserved characters")])
    async with services.pool.acquire() as conn:
        await services.limiter.hit_address(conn, "verify", client.address)
        # Deleted in its own transaction: a refusal below must not put the code back.
        flow = await services.store.take_flow_state(conn, _digest(auth_code))
        if flow is None:
            raise ServiceError(Code.FLOW_STATE_NOT_FOUND, "No valid flow state found for this code")
        if not flow["live"]:
            raise ServiceError(Code.FLOW_STATE_EXPIRED, "The code has expired")
        if not _verifier_matches(
            code_verifier, flow["code_challenge"], flow["code_challenge_method"]
        ):
            raise ServiceError(Code.BAD_CODE_VERIFIER, "Code challenge does not match")
        async with conn.transaction():
            user = await services.store.user_by_id(conn, flow["user_id"])
            if user is None:
                raise ServiceError(Code.FLOW_STATE_NOT_FOUND, "The account is gone")
            method = flow["authentication_method"]
            await services.store.record_sign_in(conn, user["id"])
            await record(
                services, conn, Event.SIGNED_IN, user["id"], client, method="pkce", kind=method
            )
            return await start_session(services, conn, user, client, method)
