"""Every refusal the service makes, as a code; each API renders it in its own shape.

The account operations raise `ServiceError(code, …)` and know nothing of HTTP: the original API
answers `{"status", "statusText", "code", "message", "errors"}`, the GoTrue-compatible API
`{"code", "message"}`, each with the status its clients expect for the code (GoTrue's
`apierrors` package is the model). A cause (a database error, say) rides along as
`__cause__`, so the log tells why while the answer stays short.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import asyncpg


class Code(StrEnum):
    # the request itself
    VALIDATION_FAILED = "validation_failed"
    INVALID_JSON = "invalid_json"
    INVALID_FORM = "invalid_form"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    BODY_TOO_LARGE = "body_too_large"
    CROSS_ORIGIN = "cross_origin"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    # credentials
    MISSING_CREDENTIALS = "missing_credentials"
    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_TOKEN = "invalid_token"
    TOKEN_REVOKED = "token_revoked"
    INVALID_RESET_TOKEN = "invalid_reset_token"
    SESSION_ENDED = "session_ended"
    SESSION_NOT_FOUND = "session_not_found"
    REFRESH_TOKEN_NOT_FOUND = "refresh_token_not_found"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"
    REAUTHENTICATION_NEEDED = "reauthentication_needed"
    EMAIL_NOT_CONFIRMED = "email_not_confirmed"
    OTP_EXPIRED = "otp_expired"
    USER_BANNED = "user_banned"
    NOT_ADMIN = "not_admin"
    SAME_PASSWORD = "same_password"
    WEAK_PASSWORD = "weak_password"
    FLOW_STATE_NOT_FOUND = "flow_state_not_found"
    FLOW_STATE_EXPIRED = "flow_state_expired"
    BAD_CODE_VERIFIER = "bad_code_verifier"
    PHONE_DISABLED = "phone_provider_disabled"
    ANONYMOUS_DISABLED = "anonymous_provider_disabled"
    # identities and second factors
    PROVIDER_DISABLED = "provider_disabled"
    BAD_OAUTH_STATE = "bad_oauth_state"
    IDENTITY_ALREADY_EXISTS = "identity_already_exists"
    IDENTITY_NOT_FOUND = "identity_not_found"
    SINGLE_IDENTITY_NOT_DELETABLE = "single_identity_not_deletable"
    MFA_DISABLED = "mfa_disabled"
    MFA_FACTOR_NOT_FOUND = "mfa_factor_not_found"
    MFA_FACTOR_NAME_CONFLICT = "mfa_factor_name_conflict"
    TOO_MANY_FACTORS = "too_many_enrolled_mfa_factors"
    MFA_CHALLENGE_EXPIRED = "mfa_challenge_expired"
    MFA_VERIFICATION_FAILED = "mfa_verification_failed"
    INSUFFICIENT_AAL = "insufficient_aal"
    # accounts
    USERNAME_TAKEN = "username_taken"
    EMAIL_TAKEN = "email_taken"
    USER_ALREADY_EXISTS = "user_already_exists"
    USER_NOT_FOUND = "user_not_found"
    SIGNUP_DISABLED = "signup_disabled"
    METADATA_TOO_LARGE = "metadata_too_large"
    ACCOUNT_REFERENCED = "account_referenced"
    # limits and faults
    RATE_LIMITED = "rate_limited"
    EMAIL_RATE_LIMITED = "email_rate_limited"
    DATABASE_UNAVAILABLE = "database_unavailable"
    INTERNAL_ERROR = "internal_error"


# The database says try again shortly: seconds for Retry-After.
DATABASE_RETRY_AFTER = 5


class ServiceError(Exception):
    """A refusal with a code, a message safe to show, and the fields at fault."""

    def __init__(
        self,
        code: Code,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        *,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.errors = errors or []
        self.retry_after = retry_after


def field_error(field: str, *messages: str) -> dict[str, Any]:
    return {"field": field, "location": "body", "messages": list(messages)}


def invalid(
    errors: list[dict[str, Any]], message: str = "Some fields are not valid"
) -> ServiceError:
    return ServiceError(Code.VALIDATION_FAILED, message, errors)


# What a lost or restarting database raises; answered 503 and never logged as a crash.
DATABASE_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    # 55000 at connect: the database is not accepting connections (allow_connections false)
    asyncpg.ObjectNotInPrerequisiteStateError,
    # a connection killed mid-statement can leave asyncpg's protocol in a state it refuses
    asyncpg.InternalClientError,
    # the database asks for the transaction to be tried again
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)
