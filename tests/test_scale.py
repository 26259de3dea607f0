"""At a million accounts and three million sessions, every query on the hot paths reads a few
index entries and never a whole big table (DESIGN §12).

Each hot path runs for real through the service's own code (its Store, its pool, the janitor,
and the pre-request functions called as PostgREST calls them), inside a transaction rolled back
afterwards. What it read comes from PostgreSQL's statistics (pg_stat_user_tables and
pg_stat_user_indexes): they count the statements inside SQL functions and the foreign-key
actions too, which an EXPLAIN of the outer statement does not show, and they name the indexes.

A new hot query is one more entry in HOT.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from postgrest_auth.database import open_pool
from postgrest_auth.passwords import PasswordHasher
from postgrest_auth.services import Services
from postgrest_auth.session_tokens import hash_session_token
from postgrest_auth.sqltext import quote_ident

from .scale_support import (
    Scale,
    build,
    email,
    next_hash,
    retired_hash,
    session_hash,
    session_id,
    session_is_live,
    session_token,
    session_user,
    user_uid,
    username,
)
from .support import dsn_for_database, make_settings, run_sql

SCALE = Scale()
# A scan of any of these reads the whole table: it must never happen on a hot path.
BIG_TABLES = (
    "users",
    "sessions",
    "refresh_tokens_retired",
    "identities",
    "mfa_factors",
    "audit_log",
    "outbox",
    "one_time_tokens",
)
# Index entries one request may read (a user's few sessions, its factors, …).
FEW = 50


# What the hot paths look up: a live session in the middle of the table and its account (which
# has an address), an account with a verified TOTP factor, one with an OIDC identity.
SESSION = SCALE.sessions // 2 + 3
USER = session_user(SCALE, SESSION)
SID, UID = session_id(SESSION), user_uid(USER)
MFA_USER = SCALE.users // 2 + 5
IDENTITY_USER = SCALE.users // 2 + 3
assert session_is_live(SESSION) and email(USER) and MFA_USER % 50 == 5 and IDENTITY_USER % 10 == 3

Run = Callable[[Services, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Hot:
    """A hot path, the indexes it must read and how many entries it may read in all."""

    name: str
    run: Run
    uses: tuple[str, ...]
    entries: int = FEW
    own_connections: bool = False  # takes its own from the pool (the janitor)
    # Checked with generic plans too (what a long-lived connection may settle on after five
    # runs of a prepared statement, PostgREST's pre-request included). Not the janitor's
    # ranges: with the bound unknown a generic plan reckons on a third of the table, costs
    # more than the custom plans and so is never chosen.
    generic: bool = True


async def pre_request(
    services: Services, conn: Any, function: str, claims: dict[str, Any] | None, cookie: str = ""
) -> Any:
    """Call a pre-request function as PostgREST does: the role and request.* settings of the
    transaction, then the function; the claims it leaves (cookie mode sets them)."""
    settings = services.settings
    schema = quote_ident(settings.db.schema_)
    cookies = {settings.cookie.name: cookie} if cookie else {}
    await conn.execute(
        "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true),"
        " set_config('request.cookies', $3, true), set_config('request.headers', '{}', true),"
        " set_config('request.method', 'GET', true)",
        settings.roles.user if claims else settings.roles.anonymous,
        json.dumps(claims) if claims else "",
        json.dumps(cookies),
    )
    await conn.execute(f"select {schema}.{quote_ident(function)}()")
    return await conn.fetchval("select nullif(current_setting('request.jwt.claims', true), '')")


def bearer(with_session: bool) -> dict[str, Any]:
    claims = {"sub": UID, "typ": "access", "count": USER % 3}
    return {**claims, "sid": SID} if with_session else claims


async def cookie_session(services: Services, conn: Any) -> None:
    claims = await pre_request(services, conn, "authenticate", None, session_token(SESSION))
    assert claims is not None and json.loads(claims)["sid"] == SID


async def cookie_unknown(services: Services, conn: Any) -> None:
    # the current cookies miss, so the retired ones are looked up too
    assert await pre_request(services, conn, "authenticate", None, "no-such-cookie") is None


async def sign_in_by_username(services: Services, conn: Any) -> None:
    row = await services.store.user_by_username(conn, username(USER).upper())
    assert row["id"] == USER


async def sign_in_by_email(services: Services, conn: Any) -> None:
    assert (await services.store.user_by_login(conn, email(USER)))["id"] == USER


async def otp_by_address(services: Services, conn: Any) -> None:
    """GoTrue /verify and /resend with an address: the account has it, or waits to move to it."""
    assert (await services.store.user_by_email_or_new_email(conn, email(USER)))["id"] == USER


async def refresh_with_access_token(services: Services, conn: Any) -> None:
    row = await services.store.refresh_session_by_claims(conn, SID, UID)
    assert row["session_id"] == SID and row["claims"]["sub"] == UID


async def refresh_rotation(services: Services, conn: Any) -> None:
    n = SESSION
    row = await services.store.rotate_session_token(
        conn, session_hash(n), next_hash(n), b"\x00" * 32, linked=True
    )
    assert row["session_id"] == SID


async def refresh_after_lost_rotation(services: Services, conn: Any) -> None:
    """The successor a crash may have lost: the session's next_token_hash."""
    n = SESSION
    row = await services.store.rotate_session_token(conn, next_hash(n), b"\x01" * 32, b"\x02" * 32)
    assert row["session_id"] == SID


async def refresh_with_retired_token(services: Services, conn: Any) -> None:
    """A rotated-out token presented again (two tabs, or theft)."""
    n = SESSION
    assert (
        await services.store.rotate_session_token(conn, retired_hash(n), b"\x03" * 32, b"") is None
    )
    row = await services.store.retired_session_token(conn, retired_hash(n))
    assert row["session_id"] == SID


async def session_by_access_token(services: Services, conn: Any) -> None:
    row = await services.store.caller_by_session(conn, SID, UID)
    assert row["id"] == USER


async def session_by_cookie(services: Services, conn: Any) -> None:
    row = await services.store.session_user_by_token(
        conn, hash_session_token(session_token(SESSION))
    )
    assert row["id"] == USER


async def gotrue_user(services: Services, conn: Any) -> None:
    """GET /auth/v1/user: the caller, then its identities and factors."""
    await session_by_access_token(services, conn)
    linked = await services.identities.linked_of(conn, IDENTITY_USER)
    assert len(linked["identities"]) == 1


async def second_factor_check(services: Services, conn: Any) -> None:
    """Before an account change: has the account a factor this session did not prove?"""
    assert await services.factors.second_factor_missing(conn, MFA_USER, SID)


async def password_change(services: Services, conn: Any) -> None:
    """The new password, then every other session of the account ends."""
    user = await services.store.user_by_id(conn, USER)
    changed = await services.store.set_password(conn, USER, "x", user["token_count"])
    assert changed is not None
    ended = await services.store.revoke_sessions(conn, USER, keep=SID)
    assert ended >= 1


async def account_deletion(services: Services, conn: Any) -> None:
    """The row (its sessions, tokens, identities and factors go with it), then its unsent mail."""
    deleted = await services.store.delete_user(conn, USER)
    assert deleted["id"] == USER
    await services.store.delete_unsent_mail_to(conn, [deleted["email"]])


async def list_sessions(services: Services, conn: Any) -> None:
    assert await services.store.list_sessions(conn, USER)


async def provider_sign_in(services: Services, conn: Any) -> None:
    row = await services.identities.user_by_identity(conn, "oidc", f"subject-{IDENTITY_USER}")
    assert row["id"] == IDENTITY_USER


async def rate_limit_hit(services: Services, conn: Any) -> None:
    hits, _ = await services.store.hit_rate_limit(conn, "address:login:10.1.2.3", 60)
    assert hits >= 1


async def outbox_claim(services: Services, conn: Any) -> None:
    assert await services.store.claim_mail(conn, 30, 10)


async def janitor(services: Services, conn: Any) -> None:
    """Every delete of the janitor's sweep, as it runs them (for real: committed)."""
    from postgrest_auth import janitor as sweeping

    await sweeping.sweep_once(services)


async def metrics_scrape(services: Services, conn: Any) -> None:
    """GET /metrics reads the outbox's figures on every scrape."""
    from postgrest_auth.observability.metrics import read_outbox

    assert await read_outbox(services) is not None


async def bearer_with_session(services: Services, conn: Any) -> None:
    await pre_request(services, conn, "check_token_count", bearer(with_session=True))


async def bearer_without_session(services: Services, conn: Any) -> None:
    await pre_request(services, conn, "check_token_count", bearer(with_session=False))


async def bearer_in_cookie_mode(services: Services, conn: Any) -> None:
    await pre_request(services, conn, "authenticate", bearer(with_session=True))


HOT = [
    Hot("sign-in by username", sign_in_by_username, ("users_username_lowercase_uniq",)),
    Hot("sign-in by address", sign_in_by_email, ("users_email_uniq",)),
    Hot("mailed code by address", otp_by_address, ("users_email_uniq", "users_new_email_idx")),
    Hot("refresh, access token", refresh_with_access_token, ("sessions_pkey", "users_pkey")),
    Hot("refresh, rotation", refresh_rotation, ("sessions_token_hash_key",)),
    Hot("refresh, lost rotation", refresh_after_lost_rotation, ("sessions_next_token_hash_idx",)),
    Hot("refresh, retired token", refresh_with_retired_token, ("refresh_tokens_retired_pkey",)),
    Hot("session by access token", session_by_access_token, ("sessions_pkey",)),
    Hot("session by cookie", session_by_cookie, ("sessions_token_hash_key",)),
    Hot("GoTrue GET /user", gotrue_user, ("identities_user_id_idx", "mfa_factors_user_id_idx")),
    Hot("second factor check", second_factor_check, ("mfa_factors_user_id_idx",)),
    Hot("password change", password_change, ("sessions_user_id_idx",)),
    Hot("list sessions", list_sessions, ("sessions_user_id_idx",)),
    Hot(
        "account deletion",
        account_deletion,
        ("users_pkey", "sessions_user_id_idx", "outbox_unsent_recipient_idx"),
    ),
    Hot("provider sign-in", provider_sign_in, ("identities_provider_subject_key",)),
    Hot("rate limit", rate_limit_hit, ("rate_limits_pkey",)),
    Hot("outbox claim", outbox_claim, ("outbox_due_idx",), entries=10 * FEW),  # a batch of 10
    Hot("pre-request, bearer with session", bearer_with_session, ("sessions_pkey",)),
    Hot("pre-request, bearer without session", bearer_without_session, ("users_uid_uniq",)),
    Hot("pre-request, bearer in cookie mode", bearer_in_cookie_mode, ("sessions_pkey",)),
    Hot("pre-request, cookie", cookie_session, ("sessions_token_hash_key",)),
    Hot(
        "pre-request, unknown cookie",
        cookie_unknown,
        ("sessions_token_hash_key", "refresh_tokens_retired_pkey"),
    ),
    Hot(
        "metrics scrape",
        metrics_scrape,
        ("outbox_due_idx", "outbox_failed_at_idx"),
        entries=SCALE.side_rows // 10,  # counts the mail waiting and failed (1% here)
        own_connections=True,
    ),
    # A sweep deletes what ended since the last one: a few thousand rows here, few entries each.
    Hot(
        "janitor sweep",
        janitor,
        ("sessions_ended_at_idx", "one_time_tokens_ended_at_idx"),
        entries=SCALE.sessions // 100,
        own_connections=True,
        generic=False,
    ),
]


@dataclass
class Reads:
    """What one hot path read: scans per big table, and index entries per index."""

    seq_scans: dict[str, int]
    index_entries: dict[str, int]


async def counters(conn: Any, schema: str) -> tuple[dict[str, int], dict[str, int]]:
    tables = await conn.fetch(
        "select relname, seq_scan from pg_stat_user_tables where schemaname = $1", schema
    )
    indexes = await conn.fetch(
        "select indexrelname, idx_tup_read + idx_scan as read from pg_stat_user_indexes"
        " where schemaname = $1",
        schema,
    )
    return {r["relname"]: r["seq_scan"] for r in tables}, {
        r["indexrelname"]: r["read"] for r in indexes
    }


async def measure(services: Services, hot: Hot, plans: str = "auto") -> Reads:
    """Run one hot path with plan_cache_mode `plans`; what it read, from the statistics its
    backend flushed."""
    schema = services.settings.db.schema_
    pool = services.pool  # one connection: the settings and the flush are the same backend's
    async with pool.acquire() as conn:
        await conn.execute(f"set plan_cache_mode = {plans}")
        await conn.execute("select pg_stat_force_next_flush()")
        tables_before, indexes_before = await counters(conn, schema)
    if hot.own_connections:
        await hot.run(services, None)
    else:
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                await hot.run(services, conn)
            finally:
                await transaction.rollback()
    async with pool.acquire() as conn:
        await conn.execute("select pg_stat_force_next_flush()")  # flushed before it answers
        tables_after, indexes_after = await counters(conn, schema)
        await conn.execute("reset plan_cache_mode")
    return Reads(
        {t: tables_after[t] - tables_before[t] for t in BIG_TABLES},
        {i: n - indexes_before[i] for i, n in indexes_after.items() if n > indexes_before[i]},
    )


@dataclass
class ScaleDatabase:
    """The service's parts over a database of SCALE, and the event loop its pool lives on."""

    services: Services
    timings: dict[str, float]
    loop: asyncio.AbstractEventLoop

    def run(self, work: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(work)


@pytest.fixture(scope="module")
def scale(admin_dsn: str) -> Iterator[ScaleDatabase]:
    """Made for this module (migrated, then filled: one to three minutes on two cores),
    dropped after it."""
    name = f"scale_{uuid.uuid4().hex[:12]}"
    run_sql(admin_dsn, f'create database "{name}"')
    dsn = dsn_for_database(admin_dsn, name)
    settings = make_settings(dsn, db={"pool": {"min": 1, "max": 1}})
    loop = asyncio.new_event_loop()

    async def start() -> tuple[Services, dict[str, float]]:
        timings = await build(dsn, settings, SCALE)
        pool = await open_pool(settings)
        return Services.build(settings, pool, PasswordHasher(settings.passwords)), timings

    try:
        services, timings = loop.run_until_complete(start())
        try:
            yield ScaleDatabase(services, timings, loop)
        finally:
            loop.run_until_complete(services.pool.close())
    finally:
        loop.close()
        run_sql(admin_dsn, f'drop database if exists "{name}" with (force)')


def test_the_data_is_at_scale(scale: ScaleDatabase) -> None:
    store = scale.services.store

    async def count() -> Any:
        async with scale.services.pool.acquire() as conn:
            return await conn.fetchrow(
                f"select (select count(*) from {store.users}),"
                f" (select count(*) from {store.sessions}),"
                f" (select count(*) from {store.sessions} where revoked_at is null"
                " and expires_at > now())"
            )

    live = sum(session_is_live(n) for n in range(1, 1001)) * SCALE.sessions // 1000
    assert tuple(scale.run(count())) == (SCALE.users, SCALE.sessions, live)
    made = ", ".join(f"{table} {seconds:.0f} s" for table, seconds in scale.timings.items())
    print(f"\nscale data: {made}")  # shown with -s


CASES = [(hot, "force_custom_plan") for hot in HOT] + [
    (hot, "force_generic_plan") for hot in HOT if hot.generic
]


@pytest.mark.parametrize(
    ("hot", "plans"), CASES, ids=[f"{h.name}, {p.split('_')[1]}" for h, p in CASES]
)
def test_hot_path_reads_an_index(scale: ScaleDatabase, hot: Hot, plans: str) -> None:
    reads = scale.run(measure(scale.services, hot, plans))
    print(f"\n{hot.name} ({plans}): {reads.index_entries}")  # shown with -s
    scanned = {table: n for table, n in reads.seq_scans.items() if n}
    assert not scanned, f"{hot.name}: whole-table scans of {scanned}"
    missing = [index for index in hot.uses if index not in reads.index_entries]
    assert not missing, f"{hot.name}: did not use {missing}; read {reads.index_entries}"
    total = sum(reads.index_entries.values())
    assert total <= hot.entries, f"{hot.name}: read {total} index entries: {reads.index_entries}"


def test_the_check_sees_a_whole_table_scan(scale: ScaleDatabase) -> None:
    """The measurement can fail: a lookup by an unindexed column is caught."""

    async def by_password(services: Services, conn: Any) -> None:
        await conn.fetchval(
            f"select id from {services.store.users} where password = $1 limit 1", "no such hash"
        )

    reads = scale.run(measure(scale.services, Hot("unindexed", by_password, ())))
    assert reads.seq_scans["users"] == 1
