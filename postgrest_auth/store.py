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
    " new_email, user_metadata, app_metadata, created_at, updated_at, last_sign_in_at,"
    " adopted_at, banned_until"
)
# The same, qualified for joins.
CALLER_COLUMNS = ", ".join(f"u.{c}" for c in USER_COLUMNS.split(", "))
# A session that can still be used: the one definition the service's queries share.
LIVE = "revoked_at is null and expires_at > now()"


# What a mail says, erased once it is sent, dropped, or failed longer than the retention: the
# bodies and the subject may hold a secret, `link` holds the template values.
ERASED = "subject = '', body_text = null, body_html = null, link = null"
# A mail whose secret has died: never sent as written (mail.relink issues a new one).
LINK_EXPIRED = "coalesce(link_expires_at <= now(), false)"


def live(alias: str) -> str:
    """LIVE for a session table under `alias` in a join."""
    return f"{alias}.revoked_at is null and {alias}.expires_at > now()"


# Inside a statement: its transaction's commit does not wait for the WAL flush (one round trip,
# where `set local` would need an explicit transaction).
ASYNC_COMMIT = "set_config('synchronous_commit', 'off', true)"


def subject_is(parameter: str) -> str:
    """A token's `sub` names its user `u`: the UUID, or the integer id (as text, so any size)
    in tokens minted before users had UUIDs."""
    return f"{parameter} in (u.uid::text, u.id::text)"


def linked_columns(schema: str) -> str:
    """The identities and second factors of the user `u`, as two JSON arrays (`identities`,
    `factors`), for answers that list them (GoTrue's user JSON) without a second round trip."""
    return (
        "(select coalesce(jsonb_agg(jsonb_build_object('id', i.id::text,"
        " 'provider', i.provider, 'subject', i.subject, 'email', i.email,"
        " 'identity_data', i.identity_data, 'created_at', i.created_at,"
        " 'updated_at', i.updated_at, 'last_sign_in_at', i.last_sign_in_at)"
        f" order by i.created_at), '[]') from {schema}.identities i where i.user_id = u.id)"
        " as identities,"
        " (select coalesce(jsonb_agg(jsonb_build_object('id', f.id::text,"
        " 'friendly_name', f.friendly_name, 'factor_type', f.factor_type,"
        " 'status', f.status, 'created_at', f.created_at, 'updated_at', f.updated_at)"
        f" order by f.created_at), '[]') from {schema}.mfa_factors f where f.user_id = u.id)"
        " as factors"
    )


class Store:
    def __init__(self, settings: Settings) -> None:
        schema = quote_ident(settings.db.schema_)
        self.users = f"{schema}.{quote_ident(settings.db.table)}"
        self.sessions = f"{schema}.sessions"
        self.outbox_table = f"{schema}.outbox"
        self.rate_limits = f"{schema}.rate_limits"
        self.audit_log = f"{schema}.audit_log"
        self.one_time_tokens = f"{schema}.one_time_tokens"
        self.flow_state = f"{schema}.flow_state"
        # The claims of an access token, defined once in SQL for us and auth.authenticate.
        self.claims_of = f"{schema}.access_claims"
        # ... for a session joined as `s` (its id and how it was signed in).
        self.session_claims = f"{self.claims_of}(u, s.id, s.amr) as claims"
        self.roles = settings.roles
        self.session_lifetime = settings.sessions.lifetime
        self.session_timebox = settings.sessions.timebox
        self.retired_tokens = f"{schema}.refresh_tokens_retired"
        self.reuse_interval = settings.sessions.reuse_interval
        self.linked_columns = linked_columns(schema)
        self._rotate = self._rotate_sql()
        self._rotate_linked = self._rotate_sql(linked=True)

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
        self,
        conn: Connection,
        username: str | None,
        email: str | None,
        password_hash: str,
        user_metadata: dict[str, Any] | None = None,
    ) -> Row:
        """Raises asyncpg.UniqueViolationError when the username or email is taken. An account
        of the GoTrue API has no username."""
        return await conn.fetchrow(
            f"insert into {self.users} (username, username_lowercase, email, password,"
            " last_sign_in_at, user_metadata) values ($1::text, lower($1::text), lower($2), $3,"
            " now(), $4::text::jsonb)"
            f" returning {USER_COLUMNS}",
            username,
            email,
            password_hash,
            json.dumps(user_metadata or {}),
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
            f"update {self.users} set email = lower($2), new_email = null,"
            # a new address is not proven: unconfirmed until a mailed link or code says so
            " email_confirmed_at = case when email = lower($2) then email_confirmed_at end,"
            f" updated_at = now() where id = $1 returning {USER_COLUMNS}",
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
        next_token_hash: bytes,
        user_agent: str | None,
        address: str | None,
        method: str,
    ) -> Row:
        """The new session's id, expiry and the claims of its access tokens; `method` is how
        it was signed in (GoTrue's amr method: password, otp, magiclink, …)."""
        return await conn.fetchrow(
            f"with s as (insert into {self.sessions}"
            " (user_id, token_hash, next_token_hash, expires_at, user_agent, address, amr)"
            f" values ($1, $2, $3, {self._session_end('now()')}, $4, $5::inet,"
            " jsonb_build_array(jsonb_build_object('method', $6::text,"
            " 'timestamp', floor(extract(epoch from now()))::bigint)))"
            " returning id, user_id, expires_at, amr)"
            f" select s.id::text as session_id, s.expires_at, {self.session_claims}"
            f" from s join {self.users} u on u.id = s.user_id",
            user_id,
            token_hash,
            next_token_hash,
            user_agent,
            address,
            method,
        )

    def _session_end(self, created_at: str) -> str:
        """When a session refreshed now would end: a lifetime from now, within its timebox.

        Both numbers are validated integers from the configuration, written into the SQL.
        """
        end = f"now() + make_interval(secs => {self.session_lifetime})"
        if self.session_timebox:
            end = f"least({end}, {created_at} + make_interval(secs => {self.session_timebox}))"
        return end

    async def refresh_session_by_claims(
        self, conn: Connection, session_id: str, subject: str
    ) -> Row | None:
        """Extend the token's session while it lives, in one statement: its id, new expiry
        and the claims of its next access token (as `create_session`; a refresh answers tokens,
        so none of the user's columns travel). A token naming a session is judged by its
        session alone.

        The expiry moves only when that gains more than a minute: refreshes in quick succession
        stay reads, with no commit to wait for.
        """
        return await conn.fetchrow(
            f"with s as (select id, user_id, created_at, expires_at, amr from {self.sessions}"
            f" where id = $1::uuid and {LIVE}),"
            f" pushed as (update {self.sessions} t set refreshed_at = now(),"
            f" expires_at = {self._session_end('s.created_at')} from s where t.id = s.id"
            f" and s.expires_at < {self._session_end('s.created_at')} - interval '60 seconds'"
            " returning t.id, t.expires_at)"
            " select s.id::text as session_id,"
            " coalesce(p.expires_at, s.expires_at) as expires_at,"
            f" {self.session_claims}"
            f" from s join {self.users} u on u.id = s.user_id"
            " left join pushed p on p.id = s.id"
            f" where {subject_is('$2')}",
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
            f" where s.id = $1::uuid and {live('s')}"
            f" and {subject_is('$2')}",
            session_id,
            subject,
        )

    async def session_user_by_token(self, conn: Connection, token_hash: bytes) -> Row | None:
        """The user of the live session whose opaque token this is, or was until a rotation
        under reuse_interval ago (as `session_claims` at PostgREST); without extending it."""
        return await conn.fetchrow(
            f"select {CALLER_COLUMNS}, s.id::text as session_id"
            f" from (select id, user_id from {self.sessions} where token_hash = $1 and {LIVE}"
            f" union all select t.id, t.user_id from {self.retired_tokens} r"
            f" join {self.sessions} t on t.id = r.session_id where r.token_hash = $1"
            " and r.retired_at > now() - make_interval(secs => $2)"
            f" and {live('t')} limit 1) s"
            f" join {self.users} u on u.id = s.user_id",
            token_hash,
            self.reuse_interval,
        )

    async def revoke_session(self, conn: Connection, user_id: int, session_id: str) -> bool:
        status = await conn.execute(
            f"update {self.sessions} set revoked_at = now() where id = $2::uuid"
            f" and user_id = $1 and {LIVE}",
            user_id,
            session_id,
        )
        return status != "UPDATE 0"

    async def revoke_sessions(
        self, conn: Connection, user_id: int, *, keep: str | None = None
    ) -> int:
        """End the user's sessions, but `keep` (the caller's, when it goes on)."""
        status = await conn.execute(
            f"update {self.sessions} set revoked_at = now() where user_id = $1"
            " and revoked_at is null and id is distinct from $2::uuid",
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

    # -- refresh-token rotation: every refresh with an opaque token replaces it ----------------

    async def rotate_session_token(
        self,
        conn: Connection,
        token_hash: bytes,
        successor_hash: bytes,
        after_hash: bytes,
        linked: bool = False,
    ) -> Row | None:
        """Replace a live session's current token by its successor, retire it, and extend the
        session, in one statement: the user's columns, `session_id` and `claims`, or None when
        the token is not a live session's current one. `linked` adds the user's `identities`
        and `factors` (linked_columns).

        Two refreshes with one token queue on the row lock; the second then finds the token
        no longer current (PostgreSQL re-checks the condition) and rotates nothing.
        The session's `next_token_hash` (the successor's, stored a rotation ahead) also counts
        as current: a crash may have lost the rotation that issued it.
        """
        sql = self._rotate_linked if linked else self._rotate
        return await conn.fetchrow(sql, token_hash, successor_hash, after_hash)

    def _rotate_sql(self, linked: bool = False) -> str:
        """The rotation's commit does not wait for the WAL flush (synchronous_commit off for
        this transaction only): waiting cost a quarter to a third of refresh throughput
        (bench/rotation.py). What a database crash can lose is the last fraction of a second
        of rotations; their clients hold a successor whose hash the session keeps as
        `next_token_hash`, so they carry on. Revocation and its audit event commit
        synchronously as ever."""
        return (
            f"with s as (update {self.sessions} t set token_hash = $2, next_token_hash = $3,"
            " refreshed_at = now(),"
            f" expires_at = greatest(t.expires_at, {self._session_end('t.created_at')})"
            " where (t.token_hash = $1 or t.next_token_hash = $1)"
            f" and {live('t')}"
            " returning t.id, t.user_id, t.expires_at, t.amr,"
            f" {ASYNC_COMMIT} as asynchronous_commit),"
            f" retired as (insert into {self.retired_tokens} (token_hash, session_id)"
            " select $1, id from s on conflict (token_hash) do nothing)"
            f" select {CALLER_COLUMNS}, s.id::text as session_id, s.expires_at,"
            f" {self.session_claims}"
            + (f", {self.linked_columns}" if linked else "")
            + f" from s join {self.users} u on u.id = s.user_id"
        )

    async def retired_session_token(self, conn: Connection, token_hash: bytes) -> Row | None:
        """A retired token's session as it is now: the user's columns, `session_id`, `claims`,
        the session's current `token_hash`, whether the session is `live`, and whether the
        token was retired `recent`ly (under reuse_interval ago). None: not a retired token."""
        return await conn.fetchrow(
            f"select {CALLER_COLUMNS}, s.id::text as session_id, s.expires_at,"
            f" {self.session_claims}, s.token_hash,"
            f" {live('s')} as live,"
            " r.retired_at > now() - make_interval(secs => $2) as recent"
            f" from {self.retired_tokens} r join {self.sessions} s on s.id = r.session_id"
            f" join {self.users} u on u.id = s.user_id where r.token_hash = $1",
            token_hash,
            self.reuse_interval,
        )

    # -- outbox --------------------------------------------------------------------------------

    async def enqueue_mail(
        self,
        conn: Connection,
        kind: str,
        recipient: str,
        subject: str,
        body_text: str,
        body_html: str | None,
        link_lifetime: int | None = None,
        link: str | None = None,
    ) -> None:
        """`link_lifetime` (seconds from this transaction's now(), as the secret's own expiry)
        and `link` (JSON: how to issue it again) for a mail that carries an expiring secret."""
        await conn.execute(
            f"insert into {self.outbox_table}"
            " (kind, recipient, subject, body_text, body_html, link_expires_at, link)"
            " values ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7::text::jsonb)",
            kind,
            recipient,
            subject,
            body_text,
            body_html,
            link_lifetime,
            link,
        )

    async def claim_mail(self, conn: Connection, lease_seconds: float, limit: int) -> list[Row]:
        """Take due mail for this worker; other workers skip it until the lease runs out.
        `link_expired`: the one rule for a mail whose secret died in the queue."""
        return await conn.fetch(
            f"update {self.outbox_table} o set attempts = attempts + 1,"
            " next_attempt_at = now() + make_interval(secs => $1)"
            f" where id in (select id from {self.outbox_table}"
            " where sent_at is null and failed_at is null and next_attempt_at <= now()"
            " order by next_attempt_at, id limit $2 for update skip locked)"
            " returning id, kind, recipient, subject, body_text, body_html, attempts,"
            f" {LINK_EXPIRED} as link_expired, link::text as link",
            lease_seconds,
            limit,
        )

    async def mark_sent(self, conn: Connection, mail_id: int) -> None:
        """What a mail says may hold a secret: erased once the server has the mail."""
        await conn.execute(
            f"update {self.outbox_table} set sent_at = now(), {ERASED}, last_error = null"
            " where id = $1",
            mail_id,
        )

    async def renew_mail(
        self,
        conn: Connection,
        mail_id: int,
        subject: str,
        body_text: str,
        body_html: str | None,
        link_lifetime: int,
        link: str,
    ) -> None:
        """The mail rendered again around a newly issued secret, in that secret's transaction."""
        await conn.execute(
            f"update {self.outbox_table} set subject = $2, body_text = $3, body_html = $4,"
            " link_expires_at = now() + make_interval(secs => $5), link = $6::text::jsonb"
            " where id = $1",
            mail_id,
            subject,
            body_text,
            body_html,
            link_lifetime,
            link,
        )

    async def drop_mail(self, conn: Connection, mail_id: int, reason: str) -> None:
        """Never to be sent (its secret died and cannot be issued again): failed for good,
        with the reason, and erased at once."""
        await conn.execute(
            f"update {self.outbox_table} set failed_at = now(), last_error = $2, {ERASED}"
            " where id = $1 and sent_at is null",
            mail_id,
            reason[:1000],
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
            " count(*) filter (where failed_at is not null and body_text is null) as erased,"
            " min(created_at) filter (where sent_at is null and failed_at is null)"
            " as oldest_pending,"
            " (select last_error from "
            f"{self.outbox_table} where last_error is not null order by id desc limit 1)"
            f" as last_error from {self.outbox_table}"
        )

    async def retry_failed_mail(self, conn: Connection) -> Row:
        """Failed mail queued again (`queued`; `expired`: of those, how many the worker will
        send with a new secret), except mail already erased (`erased`), which has nothing
        left to send."""
        return await conn.fetchrow(
            f"with queued as (update {self.outbox_table} set failed_at = null, attempts = 0,"
            " last_error = null, next_attempt_at = now()"
            f" where failed_at is not null and body_text is not null returning {LINK_EXPIRED}"
            " as link_expired)"
            " select (select count(*) from queued) as queued,"
            " (select count(*) from queued where link_expired) as expired,"
            f" (select count(*) from {self.outbox_table} where failed_at is not null"
            " and body_text is null) as erased"
        )

    async def latest_one_time_token(self, conn: Connection, user_id: int, kind: str) -> Row | None:
        """The account's one-time token of `kind` (one row per account and kind): whether a
        queued mail's secret is still the latest, before a new one replaces it. Locked (`for
        update`, in the caller's transaction) so no request replaces it between this check and
        the caller's own replacement; one replacing it meanwhile is waited for and read."""
        return await conn.fetchrow(
            f"select token_hash, used_at from {self.one_time_tokens}"
            " where user_id = $1 and kind = $2 for update",
            user_id,
            kind,
        )

    async def erase_failed_mail(self, conn: Connection, older_than_days: int) -> int:
        """What failed mail says (a reset link, a code) is erased after the retention; the
        row stays (kind, recipient, attempts, error) so `mail status` still counts it."""
        status = await conn.execute(
            f"update {self.outbox_table} set {ERASED}"
            " where failed_at < now() - make_interval(days => $1) and body_text is not null",
            older_than_days,
        )
        return int(status.split()[-1])

    async def delete_sent_mail(self, conn: Connection, older_than_days: int, batch: int) -> int:
        """At most `batch` rows sent more than `older_than_days` ago: short statements, so a
        first sweep over a large outbox holds no long lock."""
        status = await conn.execute(
            f"delete from {self.outbox_table} where id in (select id from {self.outbox_table}"
            " where sent_at < now() - make_interval(days => $1) limit $2)",
            older_than_days,
            batch,
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

    # -- one-time tokens: mailed links and codes, addresses to confirm (email flows) ----------

    async def insert_email_user(
        self, conn: Connection, email: str, user_metadata: dict[str, Any]
    ) -> Row:
        """An account from an address alone: no username, no password (a password login always
        fails for it). Raises asyncpg.UniqueViolationError when the email is taken."""
        return await conn.fetchrow(
            f"insert into {self.users} (email, user_metadata) values (lower($1), $2::text::jsonb)"
            f" returning {USER_COLUMNS}",
            email,
            json.dumps(user_metadata),
        )

    async def user_by_email_or_new_email(self, conn: Connection, email: str) -> Row | None:
        """The account that has the address, or else one waiting to move to it."""
        return await conn.fetchrow(
            f"select {USER_COLUMNS} from {self.users} where email = lower($1)"
            " or new_email = lower($1) order by email = lower($1) desc, id limit 1",
            email,
        )

    async def save_one_time_token(
        self,
        conn: Connection,
        kind: str,
        user_id: int,
        sent_to: str,
        token_hash: bytes,
        code_hash: bytes,
        lifetime: int,
        code_challenge: str | None = None,
        code_challenge_method: str | None = None,
    ) -> None:
        """The account's token of this kind, replacing (superseding) any older one; with a
        PKCE challenge when the client that asked for the mail sent one."""
        await conn.execute(
            f"insert into {self.one_time_tokens} as t"
            " (kind, user_id, sent_to, token_hash, code_hash, expires_at, code_challenge,"
            " code_challenge_method)"
            " values ($1, $2, lower($3), $4, $5, now() + make_interval(secs => $6), $7, $8)"
            " on conflict (user_id, kind) do update set sent_to = excluded.sent_to,"
            " token_hash = excluded.token_hash, code_hash = excluded.code_hash,"
            " created_at = now(), expires_at = excluded.expires_at, used_at = null,"
            " code_challenge = excluded.code_challenge,"
            " code_challenge_method = excluded.code_challenge_method",
            kind,
            user_id,
            sent_to,
            token_hash,
            code_hash,
            lifetime,
            code_challenge,
            code_challenge_method,
        )

    async def live_one_time_token_by_hash(self, conn: Connection, token_hash: bytes) -> Row | None:
        return await conn.fetchrow(
            f"select id, kind, user_id from {self.one_time_tokens}"
            " where token_hash = $1 and used_at is null and expires_at > now()",
            token_hash,
        )

    async def live_one_time_tokens_for_address(
        self, conn: Connection, kinds: list[str], email: str
    ) -> list[Row]:
        """Unspent tokens of these kinds mailed to the address; an address change is also found
        by the account's current address, as GoTrue finds it."""
        columns = "t.id, t.kind, t.user_id, t.code_hash, u.uid"
        live = "t.kind = any($1::text[]) and t.used_at is null and t.expires_at > now()"
        return await conn.fetch(
            f"select {columns} from {self.one_time_tokens} t"
            f" join {self.users} u on u.id = t.user_id where t.sent_to = lower($2) and {live}"
            f" union select {columns} from {self.users} u"
            f" join {self.one_time_tokens} t on t.user_id = u.id"
            f" where u.email = lower($2) and t.kind = 'email_change' and {live}",
            kinds,
            email,
        )

    async def clear_unproven_password(self, conn: Connection, user_id: int) -> Row:
        """Drop a password set before the address was proven; every older token dies."""
        return await conn.fetchrow(
            f"update {self.users} set password = null, token_count = token_count + 1,"
            f" updated_at = now() where id = $1 returning {USER_COLUMNS}",
            user_id,
        )

    async def spend_one_time_token(
        self, conn: Connection, token_id: int, secret_hash: bytes
    ) -> Row | None:
        """Mark a token used, if it is still the secret that was checked (a newer mail of the
        kind reuses the row: an old secret must not spend the new one). Its account (as it
        was) with the token's `kind` and `sent_to`; None when another use won the race, a
        newer mail replaced it or it expired meanwhile."""
        return await conn.fetchrow(
            f"with t as (update {self.one_time_tokens} set used_at = now() where id = $1"
            " and (token_hash = $2 or code_hash = $2)"
            " and used_at is null and expires_at > now()"
            " returning user_id, kind, sent_to, code_challenge, code_challenge_method)"
            f" select {CALLER_COLUMNS}, t.kind, t.sent_to, t.code_challenge,"
            " t.code_challenge_method"
            f" from t join {self.users} u on u.id = t.user_id",
            token_id,
            secret_hash,
        )

    async def confirm_email(self, conn: Connection, user_id: int, email: str) -> Row | None:
        """The address is proven, if the account still has it; the account, or None."""
        return await conn.fetchrow(
            f"update {self.users} set email_confirmed_at = coalesce(email_confirmed_at, now())"
            f" where id = $1 and email = lower($2) returning {USER_COLUMNS}",
            user_id,
            email,
        )

    async def set_new_email(self, conn: Connection, user_id: int, new_email: str) -> Row:
        """An address change waiting for the new address to confirm it."""
        return await conn.fetchrow(
            f"update {self.users} set new_email = lower($2), updated_at = now() where id = $1"
            f" returning {USER_COLUMNS}",
            user_id,
            new_email,
        )

    async def apply_new_email(self, conn: Connection, user_id: int, new_email: str) -> Row | None:
        """The waiting change takes effect, confirmed; None when it is no longer the one
        waiting. Raises asyncpg.UniqueViolationError when another account has the address."""
        return await conn.fetchrow(
            f"update {self.users} set email = new_email, new_email = null,"
            " email_confirmed_at = now(), updated_at = now()"
            f" where id = $1 and new_email = lower($2) returning {USER_COLUMNS}",
            user_id,
            new_email,
        )

    async def delete_old_one_time_tokens(self, conn: Connection, older_than_seconds: int) -> int:
        status = await conn.execute(
            f"delete from {self.one_time_tokens}"
            " where coalesce(used_at, expires_at) < now() - make_interval(secs => $1)",
            older_than_seconds,
        )
        return int(status.split()[-1])

    # -- profile: metadata, looking accounts up for the operator, deleting an account ---------

    # -- PKCE flow state ------------------------------------------------------------------------

    async def save_flow_state(
        self,
        conn: Connection,
        auth_code_hash: bytes,
        user_id: int,
        code_challenge: str,
        code_challenge_method: str,
        authentication_method: str,
        lifetime: int,
    ) -> None:
        await conn.execute(
            f"insert into {self.flow_state} (auth_code_hash, user_id, code_challenge,"
            " code_challenge_method, authentication_method, expires_at)"
            " values ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))",
            auth_code_hash,
            user_id,
            code_challenge,
            code_challenge_method,
            authentication_method,
            lifetime,
        )

    async def take_flow_state(self, conn: Connection, auth_code_hash: bytes) -> Row | None:
        """The flow state of this code, deleted: a code is exchanged once, right or wrong."""
        return await conn.fetchrow(
            f"delete from {self.flow_state} where auth_code_hash = $1 returning user_id,"
            " code_challenge, code_challenge_method, authentication_method,"
            " expires_at > now() as live",
            auth_code_hash,
        )

    async def delete_old_flow_states(self, conn: Connection) -> None:
        await conn.execute(f"delete from {self.flow_state} where expires_at < now()")

    async def user_by_id(self, conn: Connection, user_id: int) -> Row | None:
        return await conn.fetchrow(
            f"select {USER_COLUMNS} from {self.users} where id = $1", user_id
        )

    async def user_by_uid(self, conn: Connection, uid: str) -> Row | None:
        return await conn.fetchrow(
            f"select {USER_COLUMNS} from {self.users} where uid = $1::uuid", uid
        )

    async def merge_metadata(
        self, conn: Connection, user_id: int, column: str, changes: dict[str, Any], max_bytes: int
    ) -> Row | None:
        """Merge `changes` into the account's user_metadata or app_metadata as GoTrue does: a
        key given replaces that key, a key given as null is removed. Only if the result, as
        PostgreSQL prints it, takes at most `max_bytes`: read and written under the row's lock,
        so concurrent merges of other keys are not lost.

        The row has `metadata_bytes` (the merged size) and the updated account's columns, which
        are null when it was too large; None when there is no such account."""
        if column not in ("user_metadata", "app_metadata"):  # written into the SQL
            raise ValueError(f"not a metadata column: {column}")
        current = f"case when jsonb_typeof({column}) = 'object' then {column} else '{{}}' end"
        return await conn.fetchrow(
            f"with merged as (select id, ({current} || $2::text::jsonb)"
            " - array(select key from jsonb_each($2::text::jsonb) where value = 'null'::jsonb)"
            f" as merged_value from {self.users} where id = $1 for update),"
            f" updated as (update {self.users} u set {column} = m.merged_value,"
            " updated_at = now() from merged m"
            " where u.id = m.id and octet_length(m.merged_value::text) <= $3"
            f" returning {CALLER_COLUMNS})"
            " select octet_length(m.merged_value::text) as metadata_bytes, updated.*"
            " from merged m left join updated on true",
            user_id,
            json.dumps(changes),
            max_bytes,
        )

    async def session_started_within(
        self, conn: Connection, user_id: int, session_id: str, seconds: int
    ) -> bool:
        """Whether the user's live session began (a sign-in) less than `seconds` ago."""
        return await conn.fetchval(
            f"select exists (select from {self.sessions} where id = $1::uuid and user_id = $2"
            f" and {LIVE} and created_at > now() - make_interval(secs => $3))",
            session_id,
            user_id,
            seconds,
        )

    async def delete_user(self, conn: Connection, user_id: int) -> Row | None:
        """The account as it was; its sessions and one-time tokens go with it (cascade).
        Raises asyncpg.ForeignKeyViolationError when an application table refers to it without
        `on delete cascade`."""
        return await conn.fetchrow(
            f"delete from {self.users} where id = $1 returning {USER_COLUMNS}", user_id
        )

    async def delete_unsent_mail_to(self, conn: Connection, addresses: list[str]) -> int:
        """Drop mail not yet sent to these addresses, except to an address some (other) account
        still has or waits for: its mail is not ours to drop."""
        status = await conn.execute(
            f"delete from {self.outbox_table} o where o.sent_at is null"
            " and lower(o.recipient) = any($1::text[])"
            f" and not exists (select from {self.users} u"
            " where u.email = lower(o.recipient) or u.new_email = lower(o.recipient))",
            [address.lower() for address in addresses],
        )
        return int(status.split()[-1])

    async def drop_user_role(self, conn: Connection, role: str) -> str:
        """Compat mode: drop an account's own role: "dropped", "missing", or "kept" when the
        role is more than the plain role sign-up makes (see R_per_user_roles.sql): one of the
        configured roles, a superuser or login role, a member of anything but the anonymous
        and user roles, a role others are members of (beyond the authenticator and those who
        administer it), or the owner or grantee of anything in any database."""
        row = await conn.fetchrow(
            "select r.rolname not in ($2, $3, $4)"
            " and not (r.rolsuper or r.rolcanlogin or r.rolcreaterole or r.rolcreatedb"
            " or r.rolreplication or r.rolbypassrls)"
            " and not exists (select from pg_catalog.pg_auth_members m"
            " join pg_catalog.pg_roles g on g.oid = m.roleid"
            " where m.member = r.oid and g.rolname not in ($2, $3))"
            " and not exists (select from pg_catalog.pg_auth_members m"
            " join pg_catalog.pg_roles g on g.oid = m.member"
            " where m.roleid = r.oid and g.rolname <> $4 and not m.admin_option)"
            " and not exists (select from pg_catalog.pg_shdepend d"
            " where d.refclassid = 'pg_catalog.pg_authid'::regclass and d.refobjid = r.oid)"
            " as plain from pg_catalog.pg_roles r where r.rolname = $1",
            role,
            self.roles.anonymous,
            self.roles.user,
            self.roles.authenticator,
        )
        if row is None:
            return "missing"
        if not row["plain"]:
            return "kept"
        await conn.execute(f"drop role {quote_ident(role)}")
        return "dropped"

    # -- the admin API -------------------------------------------------------------------------

    async def list_users(self, conn: Connection, limit: int, offset: int) -> tuple[list[Row], int]:
        """A page of accounts, oldest first, and how many there are in all."""
        rows = await conn.fetch(
            f"select {USER_COLUMNS}, count(*) over () as total from {self.users}"
            " order by id limit $1 offset $2",
            limit,
            offset,
        )
        total = (
            rows[0]["total"] if rows else await conn.fetchval(f"select count(*) from {self.users}")
        )
        return list(rows), total

    async def admin_insert_user(
        self,
        conn: Connection,
        email: str,
        password_hash: str | None,
        user_metadata: dict[str, Any],
        confirmed: bool,
    ) -> Row:
        """An account made by an operator (no username). Raises asyncpg.UniqueViolationError
        when the address is taken."""
        return await conn.fetchrow(
            f"insert into {self.users} (email, password, user_metadata, email_confirmed_at)"
            " values (lower($1), $2, $3::text::jsonb, case when $4 then now() end)"
            f" returning {USER_COLUMNS}",
            email,
            password_hash,
            json.dumps(user_metadata),
            confirmed,
        )

    async def set_banned_until(self, conn: Connection, user_id: int, until: Any) -> Row | None:
        """A ban (or its end, with None); a ban also kills every sessionless token (count)."""
        return await conn.fetchrow(
            f"update {self.users} set banned_until = $2::timestamptz,"
            " token_count = token_count + case when $2::timestamptz is null then 0 else 1 end,"
            f" updated_at = now() where id = $1 returning {USER_COLUMNS}",
            user_id,
            until,
        )

    async def confirm_current_email(self, conn: Connection, user_id: int) -> Row | None:
        return await conn.fetchrow(
            f"update {self.users} set email_confirmed_at = coalesce(email_confirmed_at, now()),"
            f" updated_at = now() where id = $1 returning {USER_COLUMNS}",
            user_id,
        )
