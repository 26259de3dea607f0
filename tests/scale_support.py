"""A database at production scale (a million accounts, three million sessions) in the service's
own tables, made by one `insert … select from generate_series` per table (two halves at once
for the two biggest): the API would take days at bcrypt's pace. Shared by tests/test_scale.py
and bench/scale.py.

Row `n` of each table is derived from `n` alone, so the test and the bench know any account's
name, any session's id and opaque token without reading them back. The mix is the steady state
of a running service: almost every session live, a few ended (most less than a day ago, as the
janitor keeps it), some accounts with an address change pending, a provider identity or a
second factor, and the outbox, audit log and rate limits of a busy day.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass

import asyncpg

from postgrest_auth.config import Settings
from postgrest_auth.migrate import migrate
from postgrest_auth.store import Store

# Every generated account's password, and its bcrypt hash at the shipped cost (10).
PASSWORD = "scale password"
PASSWORD_HASH = "$2b$10$jmXj8HaZGq9P6zZTMaZjXOSMiBqNCEakF6EvFTV6Q3K2qicv47JKa"


@dataclass(frozen=True)
class Scale:
    users: int = 1_000_000
    sessions: int = 3_000_000  # and as many retired refresh tokens, one per session

    @property
    def side_rows(self) -> int:
        """Rows of the tables that grow with activity rather than with accounts."""
        return max(1, self.users // 5)


def username(n: int) -> str:
    return f"user{n}"


def user_uid(n: int) -> str:
    return str(uuid.UUID(hashlib.sha256(f"scale-user-{n}".encode()).digest()[:16].hex()))


def email(n: int) -> str | None:
    """Every tenth account has no address (made with a username alone)."""
    return None if n % 10 == 0 else f"user{n}@example.com"


def session_token(n: int) -> str:
    """The opaque token (refresh token or cookie) session n holds now."""
    return f"scale-token-{n}"


def session_hash(n: int) -> bytes:
    return hashlib.sha256(session_token(n).encode()).digest()


def session_id(n: int) -> str:
    """Session n (1-based) belongs to account (n - 1) % users + 1. Its id, its successor's
    hash (`next_token_hash`) and its retired token's hash all follow its token's hash, so each
    table is written in the order of all its indexes but one (a load in random order thrashes
    shared_buffers: three times slower)."""
    return str(uuid.UUID(session_hash(n)[:16].hex()))


def next_hash(n: int) -> bytes:
    return session_hash(n)[:31] + b"\x01"


def retired_hash(n: int) -> bytes:
    """The token session n held before its last refresh (retired minutes ago)."""
    return session_hash(n)[:31] + b"\x02"


def session_user(scale: Scale, n: int) -> int:
    return (n - 1) % scale.users + 1


def session_is_live(n: int) -> bool:
    return n % 50 not in (1, 2) and n % 1000 != 0


# Session n's token hash `h`, in the order of h.
_SESSION_HASHES = (
    "(select n, sha256(convert_to('scale-token-' || n, 'UTF8')) as h"
    " from generate_series(1, {}) n) g where {} order by h"
)
# Sessions and retired tokens load in two halves at once, by token hash: on two cores that
# halves the time, and the halves write to disjoint pages of every index in hash order.
HALVES = ("h < '\\x80'::bytea", "h >= '\\x80'::bytea")


def _statements(store: Store, scale: Scale) -> list[tuple[str, str]]:
    schema = store.users.rsplit(".", 1)[0]
    u, s, side = scale.users, scale.sessions, scale.side_rows
    return [
        (
            store.users,
            f"insert into {store.users} (id, uid, username, username_lowercase, email, password,"
            " token_count, created_at, updated_at, last_sign_in_at, email_confirmed_at,"
            " new_email, user_metadata, app_metadata)"
            " select n, encode(substring(sha256(convert_to('scale-user-' || n, 'UTF8')) for 16),"
            " 'hex')::uuid, name, name,"
            " case when n % 10 <> 0 then name || '@example.com' end,"
            f" '{PASSWORD_HASH}', n % 3, now() - make_interval(days => n % 700),"
            " now() - make_interval(days => n % 300), now() - make_interval(hours => n % 2000),"
            " case when n % 10 <> 0 then now() - make_interval(days => n % 700) end,"
            " case when n % 1000 = 7 then 'moving' || n || '@example.com' end,"
            " case when n % 4 = 0 then jsonb_build_object('name', 'User ' || n) else '{}' end,"
            """ '{"provider": "email", "providers": ["email"]}'"""
            f" from (select n, 'user' || n as name from generate_series(1, {u}) n) g"
            " order by name",
        ),
        *(
            (
                store.sessions,
                f"insert into {store.sessions} (id, user_id, token_hash, next_token_hash,"
                " created_at, refreshed_at, expires_at, revoked_at, user_agent, address, amr)"
                f" select encode(substring(h for 16), 'hex')::uuid, (n - 1) % {u} + 1, h,"
                " overlay(h placing '\\x01'::bytea from 32),"
                " now() - make_interval(days => n % 30), now() - make_interval(mins => n % 1440),"
                # ended: n % 50 = 1 revoked an hour ago, = 2 expired an hour ago (both swept
                # tomorrow); n % 1000 = 0 revoked two days ago (the next sweep deletes it)
                " case when n % 50 = 2 then now() - interval '1 hour'"
                " else now() + make_interval(days => 30 - n % 30) end,"
                " case when n % 50 = 1 then now() - interval '1 hour'"
                " when n % 1000 = 0 then now() - interval '2 days' end,"
                " 'Mozilla/5.0 (scale ' || n % 97 || ')', '10.0.0.0'::inet + n % 16777216,"
                """ '[{"method": "password", "timestamp": 1700000000}]'"""
                f" from {_SESSION_HASHES.format(s, half)}",
            )
            for half in HALVES
        ),
        *(
            (
                store.retired_tokens,
                f"insert into {store.retired_tokens} (token_hash, session_id, retired_at)"
                " select overlay(h placing '\\x02'::bytea from 32),"
                " encode(substring(h for 16), 'hex')::uuid,"
                " now() - make_interval(mins => 1 + n % 1440)"
                f" from {_SESSION_HASHES.format(s, half)}",
            )
            for half in HALVES
        ),
        (
            f"{schema}.identities",
            f"insert into {schema}.identities (user_id, provider, subject, email, identity_data)"
            " select n, 'oidc', 'subject-' || n, 'user' || n || '@example.com',"
            " jsonb_build_object('sub', 'subject-' || n, 'email_verified', true)"
            f" from generate_series(3, {u}, 10) n",
        ),
        (
            f"{schema}.mfa_factors",
            f"insert into {schema}.mfa_factors (user_id, friendly_name, factor_type, status,"
            " secret, last_used_step)"
            " select n, 'phone', 'totp', 'verified', 'JBSWY3DPEHPK3PXP', 56000000"
            f" from generate_series(5, {u}, 50) n",
        ),
        (
            store.audit_log,
            f"insert into {store.audit_log} (created_at, event, user_id, address, detail)"
            # within the retention (90 days) but for one row in a thousand
            " select now() - make_interval(mins => case when n % 1000 = 0 then 200000"
            f" else n % 120000 end), 'sign_in', (n - 1) % {u} + 1,"
            """ '10.0.0.1', '{"method": "password"}'"""
            f" from generate_series(1, {u}) n",
        ),
        (
            store.outbox_table,
            f"insert into {store.outbox_table} (kind, recipient, subject, body_text, created_at,"
            " attempts, next_attempt_at, sent_at, failed_at, last_error)"
            " select 'confirmation', 'user' || n || '@example.com', 'Confirm your address',"
            " case when n % 100 in (0, 1) then 'a body with a link' end,"
            " now() - make_interval(mins => n % 43200), 1,"
            " now() - make_interval(mins => n % 43200),"
            " case when n % 100 not in (0, 1) then now() - make_interval(mins => n % 43200) end,"
            " case when n % 100 = 1 then now() - make_interval(mins => n % 43200) end,"
            " case when n % 100 = 1 then 'mailbox unavailable' end"
            f" from generate_series(1, {side}) n",
        ),
        (
            store.rate_limits,
            f"insert into {store.rate_limits} (key, window_started_at, hits)"
            " select 'address:login:10.' || n % 256 || '.' || (n / 256) % 256 || '.'"
            " || (n / 65536) % 256, now() - make_interval(secs => n % 172800), 1 + n % 5"
            f" from generate_series(1, {side}) n",
        ),
        (
            store.one_time_tokens,
            f"insert into {store.one_time_tokens} (kind, user_id, sent_to, token_hash, code_hash,"
            " created_at, expires_at, used_at)"
            " select 'recovery', n, 'user' || n || '@example.com',"
            " sha256(convert_to('scale-link-' || n, 'UTF8')),"
            " sha256(convert_to('scale-code-' || n, 'UTF8')),"
            " now() - make_interval(mins => n % 1440), now() - make_interval(mins => n % 1440)"
            " + interval '1 hour', case when n % 3 = 0 then now() - make_interval(mins => n % 1440)"
            " end"
            f" from generate_series(1, {u}, 5) n where n % 10 <> 0",
        ),
    ]


async def generate(dsn: str, store: Store, scale: Scale) -> dict[str, float]:
    """Fill the migrated, empty tables of the database at `dsn` (as a superuser); seconds per
    table, and for the ANALYZE. Sessions, retired tokens and the rest load at once, each on
    a connection of its own."""
    statements = _statements(store, scale)
    timings: dict[str, float] = {}

    async def load(group: list[tuple[str, str]]) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            # Settings of this session only: the tables stay logged and keep every index. The
            # rows meet every foreign key by construction, so its triggers are skipped (a
            # quarter of the load): `replica` fires no ordinary trigger, as
            # pg_restore --disable-triggers does.
            await conn.execute(
                "set synchronous_commit = off; set work_mem = '256MB';"
                " set session_replication_role = replica"
            )
            for table, sql in group:
                started = time.monotonic()
                await conn.execute(sql)
                # the halves of a table load at once: the longer is the table's time
                timings[table] = max(timings.get(table, 0.0), time.monotonic() - started)
        finally:
            await conn.close()

    alone = (store.sessions, store.retired_tokens)
    rest = [statement for statement in statements if statement[0] not in alone]
    await asyncio.gather(*(load([s]) for s in statements if s[0] in alone), load(rest))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f"select setval(pg_get_serial_sequence('{store.users}', 'id'), {scale.users})"
        )
        started = time.monotonic()
        await conn.execute("analyze " + ", ".join(dict.fromkeys(t for t, _ in statements)))
        timings["analyze"] = time.monotonic() - started
    finally:
        await conn.close()
    return timings


async def build(dsn: str, settings: Settings, scale: Scale) -> dict[str, float]:
    """Migrate the empty database at `dsn`, then fill it: generate's timings, and "total", the
    seconds the data took (the migration not counted)."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, settings)
    finally:
        await conn.close()
    started = time.monotonic()
    timings = await generate(dsn, Store(settings), scale)
    timings["total"] = time.monotonic() - started
    return timings
