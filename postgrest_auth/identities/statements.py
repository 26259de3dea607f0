"""The SQL of external identities and of the provider flow state. Names from configuration
are quoted (by Store)."""

from __future__ import annotations

import json

from ..store import CALLER_COLUMNS, USER_COLUMNS, Connection, Row, Store
from .profile import ExternalProfile

# How long the browser may take at the provider (GoTrue: ten minutes as well).
FLOW_SECONDS = 600


class IdentityStore:
    def __init__(self, store: Store) -> None:
        self.users = store.users
        schema = store.users.rsplit(".", 1)[0]
        self.identities = f"{schema}.identities"
        self.flow_state = f"{schema}.provider_flow_state"
        self.linked_columns = store.linked_columns

    # -- the flow between the two redirects -----------------------------------------------

    async def save_flow(
        self,
        conn: Connection,
        state_hash: bytes,
        provider: str,
        nonce: str,
        code_verifier: str,
        redirect_to: str,
        challenge: tuple[str, str] | None,
        link_user_id: int | None,
        set_cookie: bool,
        browser_hash: bytes,
    ) -> None:
        await conn.execute(
            f"insert into {self.flow_state} (state_hash, provider, nonce, code_verifier,"
            " redirect_to, code_challenge, code_challenge_method, link_user_id, set_cookie,"
            " browser_hash, expires_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $10, $11,"
            " now() + make_interval(secs => $9))",
            state_hash,
            provider,
            nonce,
            code_verifier,
            redirect_to,
            challenge[0] if challenge else None,
            challenge[1] if challenge else None,
            link_user_id,
            FLOW_SECONDS,
            set_cookie,
            browser_hash,
        )

    async def take_flow(self, conn: Connection, state_hash: bytes) -> Row | None:
        """The flow a state names, deleted in the same statement: a state works once."""
        return await conn.fetchrow(
            f"delete from {self.flow_state} where state_hash = $1"
            " returning provider, nonce, code_verifier, redirect_to, code_challenge,"
            " code_challenge_method, link_user_id, set_cookie, browser_hash,"
            " expires_at > now() as live",
            state_hash,
        )

    async def delete_old_flows(self, conn: Connection) -> None:
        await conn.execute(f"delete from {self.flow_state} where expires_at < now()")

    # -- identities -----------------------------------------------------------------------

    async def lock_identity(self, conn: Connection, provider: str, subject: str) -> None:
        """Sign-ins of one identity queue here until the transaction ends, so two first
        sign-ins at once cannot make two accounts."""
        await conn.execute(
            "select pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"identity:{provider}:{subject}",
        )

    async def user_by_identity(self, conn: Connection, provider: str, subject: str) -> Row | None:
        """The account an identity belongs to, locked until the transaction ends."""
        return await conn.fetchrow(
            f"select {CALLER_COLUMNS} from {self.identities} i"
            f" join {self.users} u on u.id = i.user_id"
            " where i.provider = $1 and i.subject = $2 for update of u",
            provider,
            subject,
        )

    async def save_identity(self, conn: Connection, user_id: int, profile: ExternalProfile) -> None:
        """Insert, or refresh what the provider reports of an identity this account has."""
        await conn.execute(
            f"insert into {self.identities} (user_id, provider, subject, email, identity_data,"
            " last_sign_in_at) values ($1, $2, $3, lower($4), $5::text::jsonb, now())"
            " on conflict (provider, subject) do update set email = excluded.email,"
            " identity_data = excluded.identity_data, updated_at = now(),"
            f" last_sign_in_at = now() where {self.identities}.user_id = excluded.user_id",
            user_id,
            profile.provider,
            profile.subject,
            profile.email,
            json.dumps(profile.identity_data()),
        )

    async def linked_of(self, conn: Connection, user_id: int) -> Row:
        """The user's `identities` and `factors` (JSON arrays, Store.linked_columns)."""
        return await conn.fetchrow(
            f"select {self.linked_columns} from {self.users} u where u.id = $1", user_id
        )

    async def identities_of(self, conn: Connection, user_id: int) -> list[Row]:
        return await conn.fetch(
            f"select id::text, provider, subject, email, identity_data, created_at, updated_at,"
            f" last_sign_in_at from {self.identities} where user_id = $1 order by created_at",
            user_id,
        )

    async def delete_identity(self, conn: Connection, user_id: int, identity_id: str) -> Row | None:
        return await conn.fetchrow(
            f"delete from {self.identities} where user_id = $1 and id::text = $2"
            " returning provider",
            user_id,
            identity_id,
        )

    async def insert_provider_user(
        self, conn: Connection, profile: ExternalProfile, email: str | None
    ) -> Row:
        """A new account made by a provider's sign-in: no username, no password; its address
        (if any) is confirmed, because only a verified one is given."""
        metadata = {
            k: v
            for k, v in profile.identity_data().items()
            if k in ("name", "full_name", "avatar_url", "email", "email_verified", "sub")
            and v is not None
        }
        return await conn.fetchrow(
            f"insert into {self.users} (email, email_confirmed_at, user_metadata, app_metadata,"
            " last_sign_in_at) values (lower($1), case when $1::text is null then null"
            " else now() end, $2::text::jsonb,"
            " jsonb_build_object('provider', $3::text, 'providers', (select jsonb_agg(p order by p)"
            "   from (select $3::text as p union select 'email' where $1::text is not null) n)),"
            f" now()) returning {USER_COLUMNS}",
            email,
            json.dumps(metadata),
            profile.provider,
        )

    async def set_providers(self, conn: Connection, user_id: int, add: str | None = None) -> Row:
        """app_metadata.providers as GoTrue keeps it: `email` while the account has a password
        or an address, then each provider it has an identity at (`add` too: the one just
        linked)."""
        return await conn.fetchrow(
            f"update {self.users} u set app_metadata = u.app_metadata || jsonb_build_object("
            " 'providers', (select coalesce(jsonb_agg(p order by p), '[]') from ("
            "   select 'email' as p where u.email is not null or u.password is not null"
            f"   union select provider from {self.identities} where user_id = u.id"
            "   union select $2::text where $2::text is not null) names))"
            f" where id = $1 returning {USER_COLUMNS}",
            user_id,
            add,
        )

    async def email_owner(self, conn: Connection, email: str) -> Row | None:
        """The account that has this address, locked: a provider's verified address may join it."""
        return await conn.fetchrow(
            f"select {USER_COLUMNS} from {self.users} where email = lower($1) for update",
            email,
        )
