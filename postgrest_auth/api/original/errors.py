"""The original API's error shape and statuses (the Node original's production mode):
`{"status", "statusText", "code", "message", "errors": [{"field", "location", "messages"}]}`."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ...errors import Code, ServiceError

STATUS: dict[Code, int] = {
    Code.VALIDATION_FAILED: 400,
    Code.INVALID_JSON: 400,
    Code.INVALID_FORM: 400,
    Code.METADATA_TOO_LARGE: 400,
    Code.ACCOUNT_REFERENCED: 409,
    Code.UNSUPPORTED_MEDIA_TYPE: 415,
    Code.BODY_TOO_LARGE: 413,
    Code.CROSS_ORIGIN: 403,
    Code.NOT_FOUND: 404,
    Code.METHOD_NOT_ALLOWED: 405,
    Code.MISSING_CREDENTIALS: 401,
    Code.INVALID_CREDENTIALS: 401,
    Code.INVALID_TOKEN: 401,
    Code.TOKEN_REVOKED: 401,
    Code.INVALID_RESET_TOKEN: 401,
    Code.SESSION_ENDED: 401,
    Code.REFRESH_TOKEN_NOT_FOUND: 401,
    Code.REFRESH_TOKEN_REUSED: 401,
    Code.REAUTHENTICATION_NEEDED: 401,
    Code.EMAIL_NOT_CONFIRMED: 403,
    Code.OTP_EXPIRED: 401,
    Code.USER_BANNED: 403,
    Code.NOT_ADMIN: 403,
    Code.SAME_PASSWORD: 422,
    Code.WEAK_PASSWORD: 400,
    Code.FLOW_STATE_NOT_FOUND: 404,
    Code.FLOW_STATE_EXPIRED: 404,
    Code.BAD_CODE_VERIFIER: 400,
    Code.PHONE_DISABLED: 422,
    Code.ANONYMOUS_DISABLED: 422,
    Code.SESSION_NOT_FOUND: 404,
    Code.USER_NOT_FOUND: 404,
    Code.USERNAME_TAKEN: 409,
    Code.EMAIL_TAKEN: 409,
    Code.USER_ALREADY_EXISTS: 409,
    Code.PROVIDER_DISABLED: 400,
    Code.BAD_OAUTH_STATE: 400,
    Code.IDENTITY_ALREADY_EXISTS: 409,
    Code.IDENTITY_NOT_FOUND: 404,
    Code.SINGLE_IDENTITY_NOT_DELETABLE: 409,
    Code.MFA_DISABLED: 422,
    Code.MFA_FACTOR_NOT_FOUND: 404,
    Code.MFA_FACTOR_NAME_CONFLICT: 409,
    Code.TOO_MANY_FACTORS: 422,
    Code.MFA_CHALLENGE_EXPIRED: 422,
    Code.MFA_VERIFICATION_FAILED: 422,
    Code.INSUFFICIENT_AAL: 403,
    Code.SIGNUP_DISABLED: 403,
    Code.RATE_LIMITED: 429,
    Code.EMAIL_RATE_LIMITED: 429,
    Code.DATABASE_UNAVAILABLE: 503,
    Code.INTERNAL_ERROR: 500,
}

# 401s about a bearer token say so in the challenge (RFC 6750).
BEARER_ERROR = {Code.INVALID_TOKEN: "invalid_token", Code.TOKEN_REVOKED: "invalid_token"}


class FieldProblem(BaseModel):
    field: str
    location: str
    messages: list[str]


class OriginalError(BaseModel):
    """Every refusal of this API (documented so that clients and fuzzers can hold us to it)."""

    status: int
    statusText: str
    code: str
    message: str
    errors: list[FieldProblem]


# For include_router(responses=...): every route may refuse, in this shape; FastAPI then stops
# documenting its own 422 body, which this API never sends.
RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": OriginalError, "description": "Refused; nothing was changed"},
    503: {"model": OriginalError, "description": "The database is unavailable; see Retry-After"},
}


def render(error: ServiceError) -> JSONResponse:
    status = STATUS.get(error.code, 400)
    headers: dict[str, str] = {}
    if status == 401:
        bearer_error = BEARER_ERROR.get(error.code)
        headers["WWW-Authenticate"] = "Bearer" + (
            f' error="{bearer_error}"' if bearer_error else ""
        )
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    body = {
        "status": status,
        "statusText": HTTPStatus(status).phrase,
        "code": str(error.code),
        "message": error.message,
        "errors": error.errors,
    }
    return JSONResponse(body, status_code=status, headers=headers)
