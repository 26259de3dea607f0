"""Applies the SQL files in order, once, under an advisory lock.

Versioned files (`NNN_name.sql`) run once and must never change afterwards: their checksum is
recorded and compared. Repeatable files (`R_name.sql`, safe to re-run) run again whenever their
rendered text changes, so renaming a role or the cookie in the configuration reaches the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from .config import Settings
from .reach import reach
from .sqltext import quote_ident, quote_literal

log = logging.getLogger(__name__)

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class MigrationError(Exception):
    """The database and the shipped SQL disagree in a way a person must settle."""


@dataclass(frozen=True)
class Migration:
    name: str
    raw: str
    rendered: str

    @property
    def repeatable(self) -> bool:
        return self.name.startswith("R_")

    @property
    def checksum(self) -> str:
        # Versioned files are pinned by what was shipped; repeatable ones by what would run.
        text = self.rendered if self.repeatable else self.raw
        return hashlib.sha256(text.encode()).hexdigest()


def sql_directory() -> Path:
    """`sql/` inside the wheel, or beside the package in a source checkout."""
    packaged = Path(__file__).with_name("sql")
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "sql"


def template_values(settings: Settings) -> dict[str, str]:
    schema, table, roles = settings.db.schema_, settings.db.table, settings.roles
    return {
        "schema": quote_ident(schema),
        "schema_literal": quote_literal(schema),
        "table": quote_ident(table),
        "username_index": quote_ident(f"{table[:40]}_username_lowercase_uniq"),
        "email_index": quote_ident(f"{table[:40]}_email_uniq"),
        "uid_index": quote_ident(f"{table[:40]}_uid_uniq"),
        "new_email_index": quote_ident(f"{table[:40]}_new_email_idx"),
        "anon_role": quote_ident(roles.anonymous),
        "user_role": quote_ident(roles.user),
        "authenticator": quote_ident(roles.authenticator),
        "anon_role_literal": quote_literal(roles.anonymous),
        "user_role_literal": quote_literal(roles.user),
        "authenticator_literal": quote_literal(roles.authenticator),
        "per_user_literal": "true" if roles.per_user else "false",
        "cookie_name_literal": quote_literal(settings.cookie.name),
        "issuer_literal": quote_literal(settings.payload.iss),
        "aud_literal": quote_literal(settings.gotrue.aud),
        # A validated integer (seconds): a rotated cookie still opens its session this long.
        "reuse_interval_seconds": str(int(settings.sessions.reuse_interval)),
        "outbox_channel_literal": quote_literal(outbox_channel(settings)),
    }


def outbox_channel(settings: Settings) -> str:
    return f"postgrest_auth_outbox.{settings.db.schema_}"[:63]


def render(text: str, values: dict[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        return values[match.group(1)]

    return PLACEHOLDER.sub(substitute, text)


def load_migrations(settings: Settings) -> list[Migration]:
    values = template_values(settings)
    files = sorted(sql_directory().glob("*.sql"), key=lambda p: (p.name.startswith("R_"), p.name))
    return [Migration(p.name, raw := p.read_text(), render(raw, values)) for p in files]


def lock_key(settings: Settings) -> str:
    """One lock per schema: instances of other services' schemas migrate independently."""
    return f"postgrest-auth:{settings.db.schema_}"


def _bookkeeping(schema: str) -> list[str]:
    """The table that records what was applied, made before anything is read from it."""
    return [
        f"create schema if not exists {schema}",
        f"create table if not exists {schema}.schema_migrations ("
        " name text primary key, checksum text not null,"
        " applied_at timestamptz not null default now())",
        f"comment on table {schema}.schema_migrations is"
        " 'postgrest-auth: SQL files applied, with their checksums.'",
    ]


def _record(schema: str) -> str:
    return (
        f"insert into {schema}.schema_migrations (name, checksum) values ($1, $2)"
        " on conflict (name) do update set checksum = excluded.checksum, applied_at = now()"
    )


def rendered_sql(settings: Settings) -> str:
    """Everything `migrate` would run, for operators who use their own migration tool. It
    records each file as `migrate` does, so a server with `db.auto_migrate: false` sees the
    database as current afterwards, and it takes the same lock."""
    schema = quote_ident(settings.db.schema_)
    head = [f"select pg_advisory_xact_lock(hashtext({quote_literal(lock_key(settings))}));"]
    head += [f"{statement};" for statement in _bookkeeping(schema)]
    parts = [
        f"-- {m.name}\n{m.rendered.strip()}\n"
        + _record(schema)
        .replace("$1", quote_literal(m.name))
        .replace("$2", quote_literal(m.checksum))
        + ";\n"
        for m in load_migrations(settings)
    ]
    return "begin;\n\n" + "\n".join(head) + "\n\n" + "\n".join(parts) + "\ncommit;\n"


@dataclass(frozen=True)
class Status:
    """How the database stands against the shipped files."""

    pending: tuple[Migration, ...]  # what `migrate` applies: new files, repeatable ones anew
    changed: tuple[str, ...]  # versioned files whose applied checksum differs from the shipped

    @property
    def behind(self) -> tuple[str, ...]:
        """Shipped versioned files not applied: this version's schema is not there yet."""
        return tuple(m.name for m in self.pending if not m.repeatable)

    @property
    def drifted(self) -> tuple[str, ...]:
        """Repeatable files the database holds rendered otherwise: a setting they render
        changed, or a newer version migrated its own edit of them (a rolling upgrade)."""
        return tuple(m.name for m in self.pending if m.repeatable)

    @property
    def current(self) -> bool:
        """Ready to serve (readiness, the start-up check): every versioned file applied as
        shipped. Drift in repeatable files is no reason to stop serving: during a rolling
        upgrade the newer release's text is in the database; `drift_warning` says it."""
        return not self.behind and not self.changed

    def problem(self) -> str | None:
        """What stops this version serving, in one line naming the fix; None when current."""
        if self.changed:
            return (
                f"migration {self.changed[0]} was changed after it was applied; restore the"
                " shipped file (applied files must never change), or run the version that"
                " applied it"
            )
        if self.behind:
            return (
                f"db.auto_migrate is false and the database is behind"
                f" ({', '.join(self.behind)} not applied); run `postgrest-auth migrate`, or"
                " apply `postgrest-auth sql` with your own migration tool"
            )
        return None

    def drift_warning(self) -> str | None:
        """One line for the start-up log when repeatable files differ; None when they match."""
        if not self.drifted:
            return None
        return (
            f"db.auto_migrate is false and {', '.join(self.drifted)} differ from what the"
            " database holds: a setting they render (roles, cookie.name, ...) changed, or a"
            " newer version of postgrest-auth migrated; if a setting changed, run"
            " `postgrest-auth migrate` (or apply `postgrest-auth sql`); during a rolling"
            " upgrade, leave them to the newer version"
        )


def compare(migrations: Sequence[Migration], applied: Mapping[str, str]) -> Status:
    """The one rule for what is pending and what changed, shared by `migrate` and the checks.
    A name the database has but this version lacks is ignored: a newer instance migrated it
    during a rolling upgrade, and this one may keep serving; its repeatable files are then the
    newer ones, never rewritten back by an older instance (one restarted mid-upgrade)."""
    known = {m.name for m in migrations}
    newer = any(name not in known and not name.startswith("R_") for name in applied)
    pending = tuple(
        m
        for m in migrations
        if applied.get(m.name) != m.checksum
        and (m.name not in applied or (m.repeatable and not newer))
    )
    changed = tuple(
        m.name
        for m in migrations
        if not m.repeatable and m.name in applied and applied[m.name] != m.checksum
    )
    return Status(pending, changed)


async def applied_checksums(conn: asyncpg.Connection, settings: Settings) -> dict[str, str]:
    """name -> checksum of what was applied; empty when nothing ever was."""
    table = f"{quote_ident(settings.db.schema_)}.schema_migrations"
    if await conn.fetchval("select to_regclass($1) is null", table):
        return {}
    rows = await conn.fetch(f"select name, checksum from {table}")
    return {r["name"]: r["checksum"] for r in rows}


async def migration_status(conn: asyncpg.Connection, settings: Settings) -> Status:
    return compare(load_migrations(settings), await applied_checksums(conn, settings))


async def migrations_current(conn: asyncpg.Connection, settings: Settings) -> bool:
    """True when every shipped versioned file is applied as shipped (readiness, start-up check);
    repeatable files may differ (see Status.current)."""
    return (await migration_status(conn, settings)).current


# A migration may build an index or rewrite a large table, and may wait for another instance's:
# never cut by the pool's db.command_timeout (asyncpg's timeout=None means that one) nor by a
# statement_timeout the database user has for requests.
MIGRATION_SECONDS = 7 * 24 * 3600.0
NO_STATEMENT_TIMEOUT = "set local statement_timeout = 0"


async def migrate(conn: asyncpg.Connection, settings: Settings) -> list[str]:
    """Apply what is pending; return the names applied. Safe to run from many instances at once.

    With `db.direct_connection_string`, `conn` must be such a direct connection: a session
    advisory lock is held and each file commits on its own. Without it (PgBouncer in transaction
    mode, where a session lock may be taken on one server connection and released on another),
    the check and every file run in one transaction under a transaction-level lock.
    """
    key = lock_key(settings)
    if settings.db.direct_connection_string is None:
        async with conn.transaction():
            await conn.execute(NO_STATEMENT_TIMEOUT)
            await conn.execute(
                "select pg_advisory_xact_lock(hashtext($1))", key, timeout=MIGRATION_SECONDS
            )
            return await _apply_pending(conn, settings)
    await conn.execute("select pg_advisory_lock(hashtext($1))", key, timeout=MIGRATION_SECONDS)
    try:
        return await _apply_pending(conn, settings)
    finally:
        await conn.execute("select pg_advisory_unlock(hashtext($1))", key)


async def _apply_pending(conn: asyncpg.Connection, settings: Settings) -> list[str]:
    """Under the lock: read what was applied, refuse a changed file, apply the rest in order."""
    schema = quote_ident(settings.db.schema_)
    async with conn.transaction():
        await conn.execute(NO_STATEMENT_TIMEOUT)
        for statement in _bookkeeping(schema):
            await conn.execute(statement, timeout=MIGRATION_SECONDS)
    status = await migration_status(conn, settings)
    if status.changed:
        raise MigrationError(status.problem())
    done: list[str] = []
    for migration in status.pending:
        async with conn.transaction():
            await conn.execute(NO_STATEMENT_TIMEOUT)
            await conn.execute(migration.rendered, timeout=MIGRATION_SECONDS)
            await conn.execute(
                _record(schema), migration.name, migration.checksum, timeout=MIGRATION_SECONDS
            )
        log.info("applied migration %s", migration.name)
        done.append(migration.name)
    # A role granted to the authenticator since the last run (sql/R_pre_request.sql).
    await conn.execute(f"select {schema}.grant_to_postgrest_roles()", timeout=MIGRATION_SECONDS)
    return done


@contextlib.asynccontextmanager
async def migration_connection(
    settings: Settings, pool: asyncpg.Pool
) -> AsyncIterator[asyncpg.Connection]:
    """The connection `migrate` needs: a direct one when configured (its session lock must not
    cross PgBouncer), else one of the pool's."""
    direct = settings.db.direct_connection_string
    if direct is None:
        async with pool.acquire() as conn:
            yield conn
        return
    dsn = direct.get_secret_value()

    async def connect(seconds: float) -> asyncpg.Connection:
        return await asyncpg.connect(dsn, timeout=seconds)

    conn = await reach(connect, settings, dsn, "db.direct_connection_string")
    try:
        yield conn
    finally:
        await conn.close()
