"""Applies the SQL files in order, once, under an advisory lock.

Versioned files (`NNN_name.sql`) run once and must never change afterwards: their checksum is
recorded and compared. Repeatable files (`R_name.sql`, safe to re-run) run again whenever their
rendered text changes, so renaming a role or the cookie in the configuration reaches the database.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from .config import Settings
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
        "table": quote_ident(table),
        "username_index": quote_ident(f"{table[:40]}_username_lowercase_uniq"),
        "email_index": quote_ident(f"{table[:40]}_email_uniq"),
        "uid_index": quote_ident(f"{table[:40]}_uid_uniq"),
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


def rendered_sql(settings: Settings) -> str:
    """Everything `migrate` would run, for operators who use their own migration tool."""
    parts = [f"-- {m.name}\n{m.rendered.strip()}\n" for m in load_migrations(settings)]
    return "begin;\n\n" + "\n".join(parts) + "\ncommit;\n"


async def migrate(conn: asyncpg.Connection, settings: Settings) -> list[str]:
    """Apply what is pending; return the names applied. Safe to run from many instances at once."""
    schema = quote_ident(settings.db.schema_)
    lock_key = f"postgrest-auth:{settings.db.schema_}"
    await conn.execute("select pg_advisory_lock(hashtext($1))", lock_key)
    try:
        async with conn.transaction():
            await conn.execute(f"create schema if not exists {schema}")
            await conn.execute(
                f"create table if not exists {schema}.schema_migrations ("
                " name text primary key, checksum text not null,"
                " applied_at timestamptz not null default now())"
            )
            await conn.execute(
                f"comment on table {schema}.schema_migrations is"
                " 'postgrest-auth: SQL files applied, with their checksums.'"
            )
        applied = {
            r["name"]: r["checksum"]
            for r in await conn.fetch(f"select name, checksum from {schema}.schema_migrations")
        }
        done: list[str] = []
        for migration in load_migrations(settings):
            recorded = applied.get(migration.name)
            if recorded == migration.checksum:
                continue
            if recorded is not None and not migration.repeatable:
                raise MigrationError(
                    f"migration {migration.name} was changed after it was applied; "
                    "restore the shipped file (applied files must never change)"
                )
            async with conn.transaction():
                await conn.execute(migration.rendered)
                await conn.execute(
                    f"insert into {schema}.schema_migrations (name, checksum) values ($1, $2)"
                    " on conflict (name) do update set checksum = excluded.checksum,"
                    " applied_at = now()",
                    migration.name,
                    migration.checksum,
                )
            log.info("applied migration %s", migration.name)
            done.append(migration.name)
        return done
    finally:
        await conn.execute("select pg_advisory_unlock(hashtext($1))", lock_key)
