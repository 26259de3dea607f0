"""The requests and answers of second factors, the same under both APIs (GoTrue's shapes, so
auth-js `mfa.*` works; the original API answers its own token body for a verified code)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ..mfa.factors import Enrollment
from ..mfa.recovery_codes import RecoveryCodes
from ..store import Row


class Enroll(BaseModel):
    factor_type: Literal["totp"] = "totp"
    friendly_name: str | None = Field(None, max_length=100)
    issuer: str | None = Field(None, max_length=100)


class ChallengeForm(BaseModel):
    channel: str | None = None


class VerifyCode(BaseModel):
    challenge_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=64)


class RecoveryCode(BaseModel):
    code: str = Field(min_length=1, max_length=64)


class RecoveryCodesName(BaseModel):
    friendly_name: str | None = Field(None, max_length=100)


def enrollment_json(enrollment: Enrollment) -> dict[str, Any]:
    return {
        "id": enrollment.factor["id"],
        "type": "totp",
        "friendly_name": enrollment.factor["friendly_name"] or "",
        "totp": {"qr_code": enrollment.qr_svg, "secret": enrollment.secret, "uri": enrollment.uri},
    }


def challenge_json(challenge: Row) -> dict[str, Any]:
    return {"id": challenge["id"], "type": "totp", "expires_at": challenge["expires_at"]}


def recovery_codes_json(codes: RecoveryCodes) -> dict[str, Any]:
    return {
        "id": codes.factor_id,
        "type": "recovery_code",
        "friendly_name": codes.friendly_name,
        "total": len(codes.codes),
        "codes": codes.codes,
    }


def recovery_status_json(factor_id: str, status: Row) -> dict[str, Any]:
    return {
        "id": factor_id,
        "type": "recovery_code",
        "total": status["total"],
        "remaining": status["remaining"],
    }
