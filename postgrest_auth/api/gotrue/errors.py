"""GoTrue's error shape, codes and statuses, as the Supabase clients read them.

auth-js and supabase_auth take the error's `code` from the body only when the answer carries
`X-Supabase-Api-Version` (2024-01-01 or later), and they always send that header, so every
refusal here carries it: `{"code": "invalid_credentials", "message": "…"}`.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ...errors import Code, ServiceError

API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION = "2024-01-01"

# Our code -> (status, GoTrue's error_code); GoTrue's apierrors package is the model.
GOTRUE: dict[Code, tuple[int, str]] = {
    Code.VALIDATION_FAILED: (400, "validation_failed"),
    Code.INVALID_JSON: (400, "bad_json"),
    Code.INVALID_FORM: (400, "validation_failed"),
    Code.UNSUPPORTED_MEDIA_TYPE: (415, "validation_failed"),
    Code.BODY_TOO_LARGE: (413, "request_too_large"),
    Code.CROSS_ORIGIN: (403, "not_allowed"),
    Code.NOT_FOUND: (404, "not_found"),
    Code.METHOD_NOT_ALLOWED: (405, "method_not_allowed"),
    Code.MISSING_CREDENTIALS: (401, "no_authorization"),
    Code.INVALID_CREDENTIALS: (400, "invalid_credentials"),
    Code.INVALID_TOKEN: (403, "bad_jwt"),
    Code.TOKEN_REVOKED: (403, "session_not_found"),
    Code.INVALID_RESET_TOKEN: (403, "bad_jwt"),
    # only the refresh grant meets an ended session by its opaque token
    Code.SESSION_ENDED: (400, "refresh_token_not_found"),
    Code.SESSION_NOT_FOUND: (404, "session_not_found"),
    Code.REFRESH_TOKEN_NOT_FOUND: (400, "refresh_token_not_found"),
    Code.REFRESH_TOKEN_REUSED: (400, "refresh_token_already_used"),
    Code.REAUTHENTICATION_NEEDED: (400, "reauthentication_needed"),
    Code.EMAIL_NOT_CONFIRMED: (400, "email_not_confirmed"),
    Code.OTP_EXPIRED: (403, "otp_expired"),
    Code.USER_BANNED: (400, "user_banned"),
    Code.NOT_ADMIN: (403, "not_admin"),
    Code.SAME_PASSWORD: (422, "same_password"),
    Code.WEAK_PASSWORD: (422, "weak_password"),
    Code.FLOW_STATE_NOT_FOUND: (404, "flow_state_not_found"),
    Code.FLOW_STATE_EXPIRED: (404, "flow_state_expired"),
    Code.BAD_CODE_VERIFIER: (400, "bad_code_verifier"),
    Code.PHONE_DISABLED: (422, "phone_provider_disabled"),
    Code.ANONYMOUS_DISABLED: (422, "anonymous_provider_disabled"),
    Code.USERNAME_TAKEN: (422, "user_already_exists"),
    Code.EMAIL_TAKEN: (422, "email_exists"),
    Code.USER_ALREADY_EXISTS: (422, "user_already_exists"),
    Code.PROVIDER_DISABLED: (400, "provider_disabled"),
    Code.BAD_OAUTH_STATE: (400, "bad_oauth_state"),
    Code.IDENTITY_ALREADY_EXISTS: (422, "identity_already_exists"),
    Code.IDENTITY_NOT_FOUND: (422, "identity_not_found"),
    Code.SINGLE_IDENTITY_NOT_DELETABLE: (422, "single_identity_not_deletable"),
    Code.MFA_DISABLED: (422, "mfa_totp_enroll_not_enabled"),
    Code.MFA_FACTOR_NOT_FOUND: (404, "mfa_factor_not_found"),
    Code.MFA_FACTOR_NAME_CONFLICT: (422, "mfa_factor_name_conflict"),
    Code.TOO_MANY_FACTORS: (422, "too_many_enrolled_mfa_factors"),
    Code.MFA_CHALLENGE_EXPIRED: (422, "mfa_challenge_expired"),
    Code.MFA_VERIFICATION_FAILED: (422, "mfa_verification_failed"),
    Code.INSUFFICIENT_AAL: (403, "insufficient_aal"),
    Code.USER_NOT_FOUND: (404, "user_not_found"),
    Code.SIGNUP_DISABLED: (422, "signup_disabled"),
    Code.METADATA_TOO_LARGE: (400, "validation_failed"),
    Code.ACCOUNT_REFERENCED: (409, "conflict"),
    Code.RATE_LIMITED: (429, "over_request_rate_limit"),
    Code.EMAIL_RATE_LIMITED: (429, "over_email_send_rate_limit"),
    Code.DATABASE_UNAVAILABLE: (503, "unexpected_failure"),
    Code.INTERNAL_ERROR: (500, "unexpected_failure"),
}

PASSWORD_FIELDS = {"password", "new_password"}


class WeakPassword(BaseModel):
    reasons: list[str]


class GoTrueError(BaseModel):
    """Every refusal of this API, as the Supabase clients read it."""

    code: str
    message: str
    weak_password: WeakPassword | None = None


# For include_router(responses=...), as the original API's RESPONSES.
RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": GoTrueError, "description": "Refused; nothing was changed"},
    503: {"model": GoTrueError, "description": "The database is unavailable; see Retry-After"},
}


def status_of(error: ServiceError) -> int:
    return GOTRUE.get(error.code, (400, ""))[0]


def _is_weak_password(error: ServiceError) -> bool:
    """The operations report a password too short or too long as a field error; GoTrue's
    clients expect 422 weak_password with reasons."""
    return (
        error.code is Code.VALIDATION_FAILED
        and bool(error.errors)
        and all(e.get("field") in PASSWORD_FIELDS for e in error.errors)
    )


def _message(error: ServiceError) -> str:
    details = "; ".join(f"{e['field']} {' and '.join(e['messages'])}" for e in error.errors)
    return f"{error.message}: {details}" if details else error.message


def render(error: ServiceError) -> JSONResponse:
    status, code = GOTRUE.get(error.code, (400, str(error.code)))
    body: dict[str, Any] = {"code": code, "message": _message(error)}
    if _is_weak_password(error):
        status, body["code"] = 422, "weak_password"
        body["weak_password"] = {"reasons": ["length"]}
    headers = {API_VERSION_HEADER: API_VERSION}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, headers=headers)
