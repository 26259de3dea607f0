"""GoTrue's user and session JSON, as auth-js and supabase_auth parse them (strictly: the
Python client's pydantic models need `id`, `aud`, `app_metadata`, `user_metadata`,
`created_at`, and each identity its `id`, `identity_id`, `user_id`, `identity_data`,
`provider`, `created_at`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ...accounts import Grant
from ...config import Settings
from ...services import Services
from ...store import Row

UserRow = Row | dict[str, Any]
# An identity or factor: a row, or an object of the JSON arrays `linked_of` reads.
Linked = Row | dict[str, Any]


def _time(value: datetime | str | None) -> str | None:
    """ISO 8601; a time read through JSON from SQL already is."""
    return value.isoformat() if isinstance(value, datetime) else value


def role_of(settings: Settings, user: UserRow) -> str:
    """The role of the user's access tokens (as `access_claims` in SQL decides it)."""
    if settings.roles.per_user and user["username_lowercase"]:
        return str(user["username_lowercase"])
    return settings.roles.user


def identities(user: UserRow, linked: Sequence[Linked] = ()) -> list[dict[str, Any]]:
    """An address account has one identity, provider `email`, whose id is the user's; each
    provider it signed in with adds one (its id is the provider's subject, as GoTrue's)."""
    uid = str(user["uid"])
    external = [
        {
            "identity_id": row["id"],
            "id": row["subject"],
            "user_id": uid,
            "identity_data": row["identity_data"],
            "provider": row["provider"],
            "email": row["email"],
            "last_sign_in_at": _time(row["last_sign_in_at"]),
            "created_at": _time(row["created_at"]),
            "updated_at": _time(row["updated_at"]),
        }
        for row in linked
    ]
    if not user["email"]:
        return external
    confirmed = user["email_confirmed_at"] is not None
    return [
        {
            "identity_id": uid,
            "id": uid,
            "user_id": uid,
            "identity_data": {
                "sub": uid,
                "email": user["email"],
                "email_verified": confirmed,
                "phone_verified": False,
            },
            "provider": "email",
            "email": user["email"],
            "last_sign_in_at": _time(user["last_sign_in_at"]),
            "created_at": _time(user["created_at"]),
            "updated_at": _time(user["updated_at"]),
        },
        *external,
    ]


def factor_json(factor: Linked) -> dict[str, Any]:
    return {
        "id": factor["id"],
        "friendly_name": factor["friendly_name"] or "",
        "factor_type": factor["factor_type"],
        "status": factor["status"],
        "created_at": _time(factor["created_at"]),
        "updated_at": _time(factor["updated_at"]),
    }


def user_json(
    settings: Settings,
    user: UserRow,
    linked: Sequence[Linked] = (),
    factors: Sequence[Linked] = (),
) -> dict[str, Any]:
    """`linked` identities and `factors` are read only where a client looks for them (GET and
    PUT /user, sign-in at a provider, MFA), not on every refresh."""
    confirmed_at = _time(user["email_confirmed_at"])
    body: dict[str, Any] = {
        "id": str(user["uid"]),
        "aud": settings.gotrue.aud,
        "role": role_of(settings, user),
        "email": user["email"] or "",
        "email_confirmed_at": confirmed_at,
        "confirmed_at": confirmed_at,
        "phone": "",
        "last_sign_in_at": _time(user["last_sign_in_at"]),
        "app_metadata": user["app_metadata"],
        "user_metadata": user["user_metadata"],
        "identities": identities(user, linked),
        "created_at": _time(user["created_at"]),
        "updated_at": _time(user["updated_at"]),
        "is_anonymous": False,
    }
    if factors:
        body["factors"] = [factor_json(f) for f in factors]
    if user["new_email"]:
        body["new_email"] = user["new_email"]
    if user.get("banned_until") is not None:
        body["banned_until"] = _time(user["banned_until"])
    return body


def session_json(settings: Settings, granted: Grant) -> dict[str, Any]:
    """A session with its refresh token; `expires_at` as GoTrue computes it (now + lifetime)."""
    return {
        "access_token": granted.access_token,
        "token_type": "bearer",
        "expires_in": granted.expires_in,
        "expires_at": int(time.time()) + granted.expires_in,
        "refresh_token": granted.refresh_token,
        "user": user_json(settings, granted.user),
    }


async def full_user_json(services: Services, user: UserRow) -> dict[str, Any]:
    """The user with its provider identities and second factors: read with the user where the
    operation could (Store.linked_columns), else in one more round trip."""
    linked: UserRow = user
    if "factors" not in user.keys():
        async with services.pool.acquire() as conn:
            linked = await services.identities.linked_of(conn, user["id"])
    return user_json(services.settings, user, linked["identities"], linked["factors"])


async def full_session_json(services: Services, granted: Grant) -> dict[str, Any]:
    """A session whose user lists its factors: auth-js's getAuthenticatorAssuranceLevel reads
    them from the session to tell an app that the user should step up to aal2."""
    return {
        **session_json(services.settings, granted),
        "user": await full_user_json(services, granted.user),
    }
