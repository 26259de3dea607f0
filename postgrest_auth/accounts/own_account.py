"""The signed-in user changes their own account (GoTrue's `PUT /user`, the original API's
`PATCH /user`): every refusal that does not depend on the others' outcome comes first, so a
refused request changes nothing."""

from __future__ import annotations

from typing import Any

from ..mfa.session_level import require_aal2_if_enrolled
from ..services import Services
from ..store import Row
from .context import ClientInfo
from .email_change import change_own_email
from .links import VerifyLink
from .password_change import own_password_hash, set_own_password
from .profile import checked_changes, merge_user_metadata
from .sessions import Caller

# `metadata` not given (None is given, and refused: not a JSON object).
UNCHANGED: Any = object()


async def update_own_account(
    services: Services,
    client: ClientInfo,
    caller: Caller,
    *,
    metadata: Any = UNCHANGED,
    password: str | None = None,
    email: tuple[str, VerifyLink] | None = None,
) -> Row:
    """The address first (with `email.confirm` it waits for the new one to confirm): its
    refusals (taken, too many mails) can only be known by trying, so nothing else has changed
    when one comes. Then user_metadata (a JSON object; keys given as null are removed) and the
    password (every other session ends), both checked beforehand. The account as it is
    afterwards. Once the account has a second factor, the password and the address change only
    from a session that proved it."""
    changes = None if metadata is UNCHANGED else checked_changes("user_metadata", metadata)
    if password is not None or email is not None:
        async with services.pool.acquire() as conn:
            await require_aal2_if_enrolled(
                services, conn, caller, "change the password or the address"
            )
    new_hash = None if password is None else await own_password_hash(services, caller, password)
    user = caller.user
    if email is not None:
        user = await change_own_email(services, client, user, *email)
    if changes:
        user = await merge_user_metadata(services, client, caller, changes)
    if new_hash is not None:
        user = await set_own_password(services, client, Caller(user, caller.session_id), new_hash)
    return user
