"""The audit trail: one row per security event, in the transaction of the change it records.

Events are named here once. `detail` holds small facts (a scope, a reason), never a password,
token or code: the log is read by people who must not learn those.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from ..observability.metrics import count_event
from ..services import Services
from ..store import Connection
from .context import ClientInfo


class Event(StrEnum):
    SIGNED_UP = "signed_up"
    SIGNED_IN = "signed_in"
    SIGN_IN_FAILED = "sign_in_failed"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"
    PASSWORD_CHANGED = "password_changed"
    RESET_REQUESTED = "reset_requested"
    RESET_USED = "reset_used"
    EMAIL_CHANGE_REQUESTED = "email_change_requested"
    EMAIL_CHANGED = "email_changed"
    EMAIL_CONFIRMED = "email_confirmed"
    OTP_REQUESTED = "otp_requested"
    OTP_FAILED = "otp_failed"
    SIGNED_OUT = "signed_out"
    SESSION_ENDED = "session_ended"
    METADATA_CHANGED = "metadata_changed"
    ACCOUNT_DELETED = "account_deleted"
    BAN_CHANGED = "ban_changed"
    IDENTITY_LINKED = "identity_linked"
    IDENTITY_UNLINKED = "identity_unlinked"
    PROVIDER_SIGN_IN_FAILED = "provider_sign_in_failed"
    FACTOR_ENROLLED = "factor_enrolled"
    FACTOR_VERIFIED = "factor_verified"
    FACTOR_FAILED = "factor_failed"
    FACTOR_REMOVED = "factor_removed"
    RECOVERY_CODES_GENERATED = "recovery_codes_generated"
    RECOVERY_CODE_USED = "recovery_code_used"


async def record(
    services: Services,
    conn: Connection,
    event: Event,
    user_id: int | None,
    client: ClientInfo,
    **detail: Any,
) -> None:
    """Write one event in `conn`'s transaction: a rolled-back change leaves no event."""
    await services.store.insert_audit_event(
        conn, str(event), user_id, client.address, client.user_agent, detail
    )
    count_event(event, detail)  # sign-ins and reuse detections, for Prometheus
