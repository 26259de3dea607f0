"""Which account a provider's identity opens, and linking and unlinking identities.

The provider's subject names the account for good. A verified address may join a new
identity to the account that has that address, but only if that account confirmed it:
otherwise whoever registered the address first, without owning it, would share the owner's
account. An unverified address never finds an account (that is the classic take-over)."""

from __future__ import annotations

from ..accounts.audit import Event, record
from ..accounts.context import ClientInfo
from ..errors import Code, ServiceError
from ..services import Services
from ..store import Connection, Row
from .profile import ExternalProfile


async def account_for(
    services: Services,
    conn: Connection,
    client: ClientInfo,
    profile: ExternalProfile,
    link_user_id: int | None,
) -> Row:
    """In the caller's transaction: the account to sign in to, made or linked as needed."""
    identities = services.identities
    await identities.lock_identity(conn, profile.provider, profile.subject)
    owner = await identities.user_by_identity(conn, profile.provider, profile.subject)
    if link_user_id is not None:
        return await _link(services, conn, client, profile, owner, link_user_id)
    if owner is not None:
        await identities.save_identity(conn, owner["id"], profile)
        return owner
    if profile.email is not None and profile.email_verified:
        holder = await identities.email_owner(conn, profile.email)
        if holder is not None:
            if holder["email_confirmed_at"] is None:
                raise ServiceError(
                    Code.EMAIL_TAKEN,
                    f"An account with this address exists but has not confirmed it: confirm"
                    f" it (or recover its password), sign in, then link {profile.provider}",
                )
            await identities.save_identity(conn, holder["id"], profile)
            user = await identities.set_providers(conn, holder["id"], profile.provider)
            await record(
                services, conn, Event.IDENTITY_LINKED, user["id"], client,
                provider=profile.provider, by="verified_email",
            )  # fmt: skip
            return user
    email = profile.email if profile.email_verified else None
    user = await identities.insert_provider_user(conn, profile, email)
    await identities.save_identity(conn, user["id"], profile)
    await record(services, conn, Event.SIGNED_UP, user["id"], client, provider=profile.provider)
    return user


async def _link(
    services: Services,
    conn: Connection,
    client: ClientInfo,
    profile: ExternalProfile,
    owner: Row | None,
    link_user_id: int,
) -> Row:
    """A signed-in user adds an identity: refused if it already opens another account."""
    if owner is not None and owner["id"] != link_user_id:
        raise ServiceError(
            Code.IDENTITY_ALREADY_EXISTS, "This identity is already linked to another account"
        )
    await services.identities.save_identity(conn, link_user_id, profile)
    user = await services.identities.set_providers(conn, link_user_id, profile.provider)
    if user is None:
        raise ServiceError(Code.USER_NOT_FOUND, "The account is gone")
    await record(
        services, conn, Event.IDENTITY_LINKED, link_user_id, client, provider=profile.provider
    )
    return user


async def unlink(services: Services, client: ClientInfo, user: Row, identity_id: str) -> Row:
    """Remove an identity, keeping at least one way in: a password, an address (mailed links
    and codes), or another identity."""
    async with services.pool.acquire() as conn, conn.transaction():
        fresh = await services.store.user_by_id(conn, user["id"])
        if fresh is None:
            raise ServiceError(Code.USER_NOT_FOUND, "The account is gone")
        rows = await services.identities.identities_of(conn, user["id"])
        if not any(row["id"] == identity_id for row in rows):
            raise ServiceError(Code.IDENTITY_NOT_FOUND, "Identity doesn't exist")
        others = len(rows) - 1
        if not (others or fresh["password"] or fresh["email"]):
            raise ServiceError(
                Code.SINGLE_IDENTITY_NOT_DELETABLE,
                "User must have at least 1 identity after unlinking",
            )
        removed = await services.identities.delete_identity(conn, user["id"], identity_id)
        assert removed is not None
        updated = await services.identities.set_providers(conn, user["id"])
        await record(
            services, conn, Event.IDENTITY_UNLINKED, user["id"], client,
            provider=removed["provider"],
        )  # fmt: skip
        return updated
