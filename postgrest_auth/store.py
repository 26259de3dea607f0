"""Every SQL statement the service runs, in one place. Names from configuration are quoted."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from .config import Settings
from .sqltext import quote_ident

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
Row = asyncpg.Record

USER_COLUMNS = (
    "id, uid, username, username_lowercase, email, password, token_count, email_confirmed_at,"
    " new_email, user_metadata, app_metadata, created_at, updated_at, last_sign_in_at"
)
# The same, qualified for joins.
CALLER_COLUMNS = ", ".join(f"u.{c}" for c in USER_COLUMNS.split(", "))
# A session that can still be used: the one definition the service's queries share.
LIVE = "revoked_at is null and expires_at > now()"


def subject_is(parameter: str) -> str:
    """A token's `sub` names its user `u`: the UUID, or the integer id (as text, so any size)
    in tokens minted before users had UUIDs."""
    return f"{parameter} in (u.uid::text, u.id::text)"


class Store:
    def __init__(self, settings: Settings) -> None:
        schema = quote_ident(settings.db.schema_)
        self.users = f"{schema}.{quote_ident(settings.db.table)}"
        self.sessions = f"{schema}.sessions"
        self.outbox_table = f"{schema}.outbox"
        self.rate_limits = f"{schema}.rate_limits"
        self.audit_log = f"{schema}.audit_log"
        # The claims of an access token, defined once in SQL for us and auth.authenticate.
        self.claims_of = f"{schema}.access_claims"
        self.roles = settings.roles
        self.session_lifetime = settings.sessions.lifetime
        self.session_timebox = settings.sessions.timebox

    # -- users ---------------------------------------------------------------------------------

    async def user_by_username(self, conn: Connection, username: str) -> Row | None:
        return await conn.fetchrow(
            f"select {USER_COLUMNS} from {self.users} where username_lowercase = lower($1)",
            username,
        )

    async def user_by_login(self, conn: Connection, login: str) -> Row | None:
        """A login is a username or, when it has an @, an email."""
        column = "email" if "@" in login else "username_lowercase"
        return await conn.fetchrow(
            f"select {USER_COLUMNS} from {self.users} where {column} = lower($1)", login
        )

    async def user_by_email(self, conn: Connection, email: str) -> Row | None:
        return await conn.fetchrow(
            f"select {USER_COLUMNS} from {self.users} where email = lower($1)", email
        )

    async def insert_user(
        self, conn: Connection, username: str, email: str | None, password_hash: str
    ) -> Row:
        """Raises asyncpg.UniqueViolationError when the username or email is taken."""
        return await conn.fetchrow(
            f"insert into {self.users} (username, username_lowercase, email, password,"
            " last_sign_in_at) values ($1::text, lower($1::text), lower($2), $3, now())"
            f" returning {USER_COLUMNS}",
            username,
            email,
            password_hash,
        )

    async def create_user_role(self, conn: Connection, role: str) -> None:
        """Compat mode: a role per user that PostgREST can switch to (the original forgot that)."""
        name = quote_ident(role)
        await conn.execute(f"create role {name} nologin")
        await conn.execute(
            f"grant {quote_ident(self.roles.user)}, {quote_ident(self.roles.anonymous)} to {name}"
        )
        await conn.execute(f"grant {name} to {quote_ident(self.roles.authenticator)}")

    async def set_password(
        self, conn: Connection, user_id: int, password_hash: str, seen_count: int
    ) -> Row | None:
        """A new password kills every older token: token_count moves on.

        Only if the count is still the one the caller proved against, so a reset token is
        spent by its first use even when two uses race.
        """
        return await conn.fetchrow(
            f"update {self.users} set password = $2, token_count = token_count + 1,"
            f" updated_at = now() where id = $1 and token_count = $3 returning {USER_COLUMNS}",
            user_id,
            password_hash,
            seen_count,
        )

    async def rehash_password(
        self, conn: Connection, user_id: int, old_hash: str, new_hash: str
    ) -> None:
        """Same password at the configured cost; tokens stay valid. Skipped if it changed since."""
        await conn.execute(
            f"update {self.users} set password = $3 where id = $1 and password = $2",
            user_id,
            old_hash,
            new_hash,
        )

    async def record_sign_in(self, conn: Connection, user_id: int) -> None:
        await conn.execute(
            f"update {self.users} set last_sign_in_at = now() where id = $1", user_id
        )

    async def set_email(self, conn: Connection, user_id: int, email: str) -> Row:
        """Raises asyncpg.UniqueViolationError when another account has the email."""
        return await conn.fetchrow(
            f"update {self.users} set email = lower($2), updated_at = now() where id = $1"
            f" returning {USER_COLUMNS}",
            user_id,
            email,
        )

    async def most_common_password_cost(
        self, conn: Connection, sample_rows: int | None = 10000
    ) -> int | None:
        """The bcrypt cost most stored hashes have; None when no stored hash is bcrypt.

        Unknown accounts are verified against a dummy hash made at it, so they take as long
        as known ones while old hashes wait for their owner's next login to be rehashed at
        the configured cost (PasswordHasher.set_dummy_cost).

        Cheap on millions of rows: a block sample (tablesample system) whose percentage is
        sized from the planner's row estimate (pg_class.reltuples) to about `sample_rows`
        rows; the whole table when the estimate is no larger, missing (never analysed) or
        sample_rows is None, and again whole when a partial sample came back empty.
        """
        sql = (
            "select cost from (select substring(password from $1)::int as cost"
            f" from {self.users} tablesample system (coalesce((select least(100,"
            " $2::float8 * 100 / nullif(greatest(reltuples, 0), 0))"
            " from pg_class where oid = to_regclass($3)), 100))) sampled"
            " group by cost order by cost is null, count(*) desc, cost desc limit 1"
        )
        pattern = r"^\$2[aby]?\$(\d\d)\$"  # $2b$12$...: the two digits
        row = await conn.fetchrow(sql, pattern, sample_rows, self.users)
        if row is None and sample_rows is not None:  # sampled no row: a stale estimate?
            row = await conn.fetchrow(sql, pattern, None, self.users)
        return None if row is None else row["cost"]

    # -- sessions ------------------------------------------------------------------------------

    async def create_session(
        self,
        conn: Connection,
        user_id: int,
        token_hash: bytes,
        user_agent: str | None,
        address: str | None,
    ) -> Row:
        """The new session's id, expiry and the claims of its access tokens."""
        return await conn.fetchrow(
            f"with s as (insert into {self.sessions}"
            " (user_id, token_hash, expires_at, user_agent, address)"
            f" values ($1, $2, {self._session_end('now()')}, $3, $4::inet)"
            " returning id, user_id, expires_at)"
            f" select s.id::text, s.expires_at, {self.claims_of}(u, s.id) as claims"
            f" from s join {self.users} u on u.id = s.user_id",
            user_id,
            token_hash,
            user_agent,
            address,
        )

    def _session_end(self, created_at: str) -> str:
        """When a session refreshed now would end: a lifetime from now, within its timebox.

        Both numbers are validated integers from the configuration, written into the SQL.
        """
        end = f"now() + make_interval(secs => {self.session_lifetime})"
        if self.session_timebox:
            end = f"least({end}, {created_at} + make_interval(secs => {self.session_timebox}))"
        return end

    def _refresh_sql(self, session_filter: str) -> str:
        """Find a live session and its user, and push its expiry forward, in one statement.

        The expiry moves only when that gains more than a minute: refreshes in quick succession
        stay reads, with no commit to wait for.
        """
        return (
            f"with s as (select id, user_id, created_at, expires_at from {self.sessions}"
            f" where {session_filter} and {LIVE}),"
            f" pushed as (update {self.sessions} t set refreshed_at = now(),"
            f" expires_at = {self._session_end('s.created_at')} from s where t.id = s.id"
            f" and s.expires_at < {self._session_end('s.created_at')} - interval '60 seconds'"
            " returning t.id, t.expires_at)"
            f" select {CALLER_COLUMNS}, s.id::text as session_id,"
            " coalesce(p.expires_at, s.expires_at) as expires_at,"
            f" {self.claims_of}(u, s.id) as claims"
            f" from s join {self.users} u on u.id = s.user_id"
            " left join pushed p on p.id = s.id"
        )

    async def refresh_session_by_token(self, conn: Connection, token_hash: bytes) -> Row | None:
        """Extend a live session found by its opaque token; the user and the session in one trip."""
        return await conn.fetchrow(self._refresh_sql("token_hash = $1"), token_hash)

    async def refresh_session_by_claims(
        self, conn: Connection, session_id: str, subject: str
    ) -> Row | None:
        """Extend the token's session while it lives; one trip. A token naming a session is
        judged by its session alone."""
        return await conn.fetchrow(
            self._refresh_sql("id = $1::uuid") + f" where {subject_is('$2')}",
            session_id,
            subject,
        )

    async def caller_by_session(
        self, conn: Connection, session_id: str, subject: str
    ) -> Row | None:
        """The user behind a token whose session still lives, without extending it."""
        return await conn.fetchrow(
            f"select {CALLER_COLUMNS}, s.id::text as session_id"
            f" from {self.sessions} s join {self.users} u on u.id = s.user_id"
            " where s.id = $1::uuid and s.revoked_at is null and s.expires_at > now()"
            f" and {subject_is('$2')}",
            session_id,
            subject,
        )

    async def session_user_by_token(self, conn: Connection, token_hash: bytes) -> Row | None:
        return await conn.fetchrow(
            f"select {CALLER_COLUMNS}, s.id::text as session_id"
            f" from (select id, user_id from {self.sessions} where token_hash = $1 and {LIVE}) s"
            f" join {self.users} u on u.id = s.user_id",
            token_hash,
        )

    async def revoke_session(self, conn: Connection, user_id: int, session_id: str) -> bool:
        status = await conn.execute(
            f"update {self.sessions} set revoked_at = now() where id = $2::uuid"
            f" and user_id = $1 and {LIVE}",
            user_id,
            session_id,
        )
        return status != "UPDATE 0"

    async def revoke_sessions(self, conn: Connection, user_id: int, keep: str | None = None) -> int:
        status = await conn.execute(
            f"update {self.sessions} set revoked_at = now() where user_id = $1"
            " and revoked_at is null and ($2::uuid is null or id <> $2::uuid)",
            user_id,
            keep,
        )
        return int(status.split()[-1])

    async def bump_token_count(self, conn: Connection, user_id: int) -> None:
        await conn.execute(
            f"update {self.users} set token_count = token_count + 1 where id = $1", user_id
        )

    async def list_sessions(self, conn: Connection, user_id: int) -> list[Row]:
        return await conn.fetch(
            "select id::text, created_at, refreshed_at, expires_at, user_agent,"
            f" host(address) as address from {self.sessions}"
            f" where user_id = $1 and {LIVE}"
            " order by refreshed_at desc",
            user_id,
        )

    async def delete_dead_sessions(self, conn: Connection, older_than_seconds: int) -> int:
        status = await conn.execute(
            f"delete from {self.sessions} where coalesce(revoked_at, expires_at)"
            " < now() - make_interval(secs => $1)",
            older_than_seconds,
        )
        return int(status.split()[-1])

    # -- outbox --------------------------------------------------------------------------------

    async def enqueue_mail(
        self,
        conn: Connection,
        kind: str,
        recipient: str,
        subject: str,
        body_text: str,
        body_html: str | None,
    ) -> None:
        await conn.execute(
            f"insert into {self.outbox_table} (kind, recipient, subject, body_text, body_html)"
            " values ($1, $2, $3, $4, $5)",
            kind,
            recipient,
            subject,
            body_text,
            body_html,
        )

    async def claim_mail(self, conn: Connection, lease_seconds: float, limit: int) -> list[Row]:
        """Take due mail for this worker; other workers skip it until the lease runs out."""
        return await conn.fetch(
            f"update {self.outbox_table} o set attempts = attempts + 1,"
            " next_attempt_at = now() + make_interval(secs => $1)"
            f" where id in (select id from {self.outbox_table}"
            " where sent_at is null and failed_at is null and next_attempt_at <= now()"
            " order by next_attempt_at, id limit $2 for update skip locked)"
            " returning id, kind, recipient, subject, body_text, body_html, attempts",
            lease_seconds,
            limit,
        )

    async def mark_sent(self, conn: Connection, mail_id: int) -> None:
        """Bodies may hold reset links: they are erased once the server has the mail."""
        await conn.execute(
            f"update {self.outbox_table} set sent_at = now(), body_text = null,"
            " body_html = null, last_error = null where id = $1",
            mail_id,
        )

    async def mark_failed_attempt(
        self, conn: Connection, mail_id: int, error: str, retry_in: float | None
    ) -> None:
        """Schedule the next attempt, or give up when retry_in is None."""
        await conn.execute(
            f"update {self.outbox_table} set last_error = $2,"
            " next_attempt_at = now() + make_interval(secs => coalesce($3, 0)),"
            " failed_at = case when $3::float8 is null then now() end where id = $1",
            mail_id,
            error[:1000],
            retry_in,
        )

    async def seconds_until_next_mail(self, conn: Connection) -> float | None:
        """None when nothing waits. (greatest() would skip the null of an empty queue and say 0,
        which made an idle worker spin.)"""
        seconds = await conn.fetchval(
            "select extract(epoch from min(next_attempt_at) - now())::float8"
            f" from {self.outbox_table} where sent_at is null and failed_at is null"
        )
        return None if seconds is None else max(0.0, seconds)

    async def outbox_status(self, conn: Connection) -> Row:
        return await conn.fetchrow(
            "select count(*) filter (where sent_at is null and failed_at is null) as pending,"
            " count(*) filter (where sent_at is not null) as sent,"
            " count(*) filter (where failed_at is not null) as failed,"
            " min(created_at) filter (where sent_at is null and failed_at is null)"
            " as oldest_pending,"
            " (select last_error from "
            f"{self.outbox_table} where last_error is not null order by id desc limit 1)"
            f" as last_error from {self.outbox_table}"
        )

    async def retry_failed_mail(self, conn: Connection) -> int:
        status = await conn.execute(
            f"update {self.outbox_table} set failed_at = null, attempts = 0,"
            " next_attempt_at = now() where failed_at is not null"
        )
        return int(status.split()[-1])

    # -- audit ---------------------------------------------------------------------------------

    async def insert_audit_event(
        self,
        conn: Connection,
        event: str,
        user_id: int | None,
        address: str | None,
        user_agent: str | None,
        detail: dict[str, Any],
    ) -> None:
        await conn.execute(
            f"insert into {self.audit_log} (event, user_id, address, user_agent, detail)"
            " values ($1, $2, $3::inet, $4, $5::text::jsonb)",  # text: whatever jsonb codec
            event,
            user_id,
            address,
            user_agent,
            json.dumps(detail),
        )

    async def delete_old_audit_events(self, conn: Connection, older_than_days: int) -> int:
        status = await conn.execute(
            f"delete from {self.audit_log} where created_at < now() - make_interval(days => $1)",
            older_than_days,
        )
        return int(status.split()[-1])

    # -- rate limits ---------------------------------------------------------------------------

    async def hit_rate_limit(self, conn: Connection, key: str, window: int) -> tuple[int, datetime]:
        """Count one attempt in the key's current fixed window; (hits, window start)."""
        row = await conn.fetchrow(
            f"insert into {self.rate_limits} as r (key, window_started_at, hits)"
            " values ($1, now(), 1) on conflict (key) do update set"
            " hits = case when r.window_started_at <= now() - make_interval(secs => $2)"
            " then 1 else r.hits + 1 end,"
            " window_started_at = case when r.window_started_at <= now()"
            " - make_interval(secs => $2) then now() else r.window_started_at end"
            " returning hits, window_started_at",
            key,
            window,
        )
        return row["hits"], row["window_started_at"]

    async def forgive_rate_limit(self, conn: Connection, key: str) -> None:
        await conn.execute(
            f"update {self.rate_limits} set hits = greatest(hits - 1, 0) where key = $1", key
        )

    async def delete_old_rate_limits(self, conn: Connection, older_than_seconds: int) -> None:
        await conn.execute(
            f"delete from {self.rate_limits}"
            " where window_started_at < now() - make_interval(secs => $1)",
            older_than_seconds,
        )
