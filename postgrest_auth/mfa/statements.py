"""The SQL of second factors, challenges, recovery codes, and of raising a session to aal2."""

from __future__ import annotations

from ..store import CALLER_COLUMNS, LIVE, Connection, Row, Store

FACTOR_COLUMNS = "id::text, friendly_name, factor_type, status, created_at, updated_at"


class FactorStore:
    def __init__(self, store: Store) -> None:
        schema = store.users.rsplit(".", 1)[0]
        self.schema = schema
        self.users = store.users
        self.sessions = store.sessions
        self.retired_tokens = store.retired_tokens
        self.session_claims = store.session_claims
        self.factors = f"{schema}.mfa_factors"
        self.challenges = f"{schema}.mfa_challenges"
        self.recovery_codes = f"{schema}.mfa_recovery_codes"

    async def factors_of(self, conn: Connection, user_id: int) -> list[Row]:
        return await conn.fetch(
            f"select {FACTOR_COLUMNS} from {self.factors} where user_id = $1 order by created_at",
            user_id,
        )

    async def factors_of_users(self, conn: Connection, user_ids: list[int]) -> list[Row]:
        return await conn.fetch(
            f"select user_id, {FACTOR_COLUMNS} from {self.factors} where user_id = any($1)"
            " order by created_at",
            user_ids,
        )

    async def second_factor_missing(
        self, conn: Connection, user_id: int, session_id: str | None
    ) -> bool:
        """The account has a verified factor and this session (if any) did not prove one."""
        return bool(
            await conn.fetchval(
                f"select exists (select from {self.factors} where user_id = $1"
                " and status = 'verified')"
                f" and not coalesce((select {self.schema}.session_aal(amr) = 'aal2'"
                f" from {self.sessions} where id = $2::uuid and {LIVE}), false)",
                user_id,
                session_id,
            )
        )

    async def lock_user(self, conn: Connection, user_id: int) -> None:
        """Enrolments of one user queue here, so two cannot both slip under the limit."""
        await conn.execute(f"select 1 from {self.users} where id = $1 for update", user_id)

    async def insert_factor(
        self,
        conn: Connection,
        user_id: int,
        friendly_name: str | None,
        kind: str,
        secret: str | None,
    ) -> Row:
        return await conn.fetchrow(
            f"insert into {self.factors} (user_id, friendly_name, factor_type, status, secret)"
            " values ($1, $2, $3, case when $3 = 'totp' then 'unverified' else 'verified' end,"
            f" $4) returning {FACTOR_COLUMNS}",
            user_id,
            friendly_name,
            kind,
            secret,
        )

    async def factor(self, conn: Connection, user_id: int, factor_id: str) -> Row | None:
        return await conn.fetchrow(
            f"select {FACTOR_COLUMNS}, secret, last_used_step from {self.factors}"
            " where user_id = $1 and id::text = $2",
            user_id,
            factor_id,
        )

    async def delete_factor(self, conn: Connection, user_id: int, factor_id: str) -> Row | None:
        return await conn.fetchrow(
            f"delete from {self.factors} where user_id = $1 and id::text = $2"
            " returning factor_type, status",
            user_id,
            factor_id,
        )

    async def delete_recovery_factor(self, conn: Connection, user_id: int) -> None:
        await conn.execute(
            f"delete from {self.factors} where user_id = $1 and factor_type = 'recovery_code'",
            user_id,
        )

    async def create_challenge(
        self, conn: Connection, factor_id: str, address: str | None, seconds: int
    ) -> Row:
        return await conn.fetchrow(
            f"insert into {self.challenges} (factor_id, address) values ($1::uuid, $2::inet)"
            " returning id::text, floor(extract(epoch from created_at))::bigint + $3 as expires_at",
            factor_id,
            address,
            seconds,
        )

    async def live_challenge(
        self, conn: Connection, factor_id: str, challenge_id: str, seconds: int
    ) -> Row | None:
        """The challenge, unanswered, of this factor; `live` false once it has expired."""
        return await conn.fetchrow(
            f"select id, created_at > now() - make_interval(secs => $3) as live"
            f" from {self.challenges} where id::text = $2 and factor_id::text = $1"
            " and verified_at is null",
            factor_id,
            challenge_id,
            seconds,
        )

    async def accept_code(
        self, conn: Connection, factor_id: str, challenge_id: str, step: int, seconds: int
    ) -> bool:
        """In one statement, the live challenge is answered and the step becomes the factor's
        last; false if the challenge was answered meanwhile or a code of this step or a later
        one was accepted (two codes at once: one wins)."""
        row = await conn.fetchrow(
            f"with answered as (update {self.challenges} set verified_at = now()"
            " where id::text = $3 and factor_id::text = $1 and verified_at is null"
            " and created_at > now() - make_interval(secs => $4) returning id)"
            f" update {self.factors} set last_used_step = $2, status = 'verified',"
            " updated_at = now() where id::text = $1"
            " and (last_used_step is null or last_used_step < $2)"
            " and exists (select from answered) returning id",
            factor_id,
            step,
            challenge_id,
            seconds,
        )
        return row is not None

    async def delete_old_challenges(self, conn: Connection, older_than_seconds: int) -> None:
        await conn.execute(
            f"delete from {self.challenges} where created_at < now() - make_interval(secs => $1)",
            older_than_seconds,
        )

    async def delete_unverified_factors(self, conn: Connection, user_id: int) -> None:
        """Once a factor is verified, the user's other unfinished enrolments go."""
        await conn.execute(
            f"delete from {self.factors} where user_id = $1 and status = 'unverified'", user_id
        )

    async def replace_recovery_codes(
        self, conn: Connection, factor_id: str, code_hashes: list[bytes]
    ) -> None:
        await conn.execute(
            f"delete from {self.recovery_codes} where factor_id::text = $1", factor_id
        )
        await conn.executemany(
            f"insert into {self.recovery_codes} (factor_id, code_hash) values ($1::uuid, $2)",
            [(factor_id, digest) for digest in code_hashes],
        )

    async def recovery_status(self, conn: Connection, factor_id: str) -> Row:
        return await conn.fetchrow(
            "select count(*)::int as total, (count(*) filter (where used_at is null))::int"
            f" as remaining from {self.recovery_codes} where factor_id::text = $1",
            factor_id,
        )

    async def spend_recovery_code(self, conn: Connection, factor_id: str, code_hash: bytes) -> bool:
        row = await conn.fetchrow(
            f"update {self.recovery_codes} set used_at = now() where factor_id::text = $1"
            " and code_hash = $2 and used_at is null returning id",
            factor_id,
            code_hash,
        )
        return row is not None

    async def session_is_aal2(self, conn: Connection, session_id: str) -> bool:
        return bool(
            await conn.fetchval(
                f"select {self.schema}.session_aal(amr) = 'aal2' from {self.sessions}"
                f" where id = $1::uuid and {LIVE}",
                session_id,
            )
        )

    async def end_aal1_sessions(self, conn: Connection, user_id: int, keep: str) -> None:
        """A first factor verified: the user's sessions that did not prove it end (GoTrue's
        InvalidateSessionsWithAALLessThan), but the caller's."""
        await conn.execute(
            f"update {self.sessions} set revoked_at = now() where user_id = $1"
            f" and revoked_at is null and id <> $2::uuid"
            f" and {self.schema}.session_aal(amr) <> 'aal2'",
            user_id,
            keep,
        )

    async def downgrade_sessions(self, conn: Connection, user_id: int, methods: list[str]) -> None:
        """The last second factor gone: no session of the user counts `methods` any more."""
        await conn.execute(
            f"update {self.sessions} s set amr = coalesce((select jsonb_agg(e)"
            " from jsonb_array_elements(s.amr) e where e->>'method' <> all($2::text[])), '[]')"
            " where user_id = $1 and revoked_at is null",
            user_id,
            methods,
        )

    async def step_up_session(
        self,
        conn: Connection,
        session_id: str,
        method: str,
        token_hash: bytes,
        next_token_hash: bytes,
    ) -> Row | None:
        """Add `method` to the session's amr and give it a new opaque token (the client gets
        new tokens that say aal2); the old token retires as a rotation retires it. The user's
        columns, `session_id` and `claims`; None when the session has ended."""
        return await conn.fetchrow(
            f"with old as (select id, token_hash from {self.sessions}"
            f" where id = $1::uuid and {LIVE} for update),"
            f" s as (update {self.sessions} t set token_hash = $3, next_token_hash = $4,"
            " amr = t.amr || jsonb_build_array(jsonb_build_object('method', $2::text,"
            " 'timestamp', floor(extract(epoch from now()))::bigint))"
            " from old where t.id = old.id returning t.id, t.user_id, t.expires_at, t.amr),"
            f" retired as (insert into {self.retired_tokens} (token_hash, session_id)"
            " select token_hash, id from old on conflict (token_hash) do nothing)"
            f" select {CALLER_COLUMNS}, s.id::text as session_id, s.expires_at,"
            f" {self.session_claims} from s join {self.users} u on u.id = s.user_id",
            session_id,
            method,
            token_hash,
            next_token_hash,
        )
