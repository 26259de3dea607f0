"""The connection pool every request and background task shares."""

from __future__ import annotations

import json

import asyncpg

from .config import Settings


async def _end_open_transaction(conn: asyncpg.Connection) -> None:
    """The service leaves no session state on pooled connections (no SET, LISTEN or advisory
    lock held), so asyncpg's default reset, a round trip per release, is skipped; only a
    transaction left open by a cancelled request is rolled back."""
    if conn.is_in_transaction():
        await conn.execute("rollback")


async def _decode_json(conn: asyncpg.Connection) -> None:
    """jsonb (metadata, claims) arrives as Python objects."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def open_pool(settings: Settings) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        settings.dsn(),
        min_size=min(settings.db.pool.min, settings.pool_max()),
        max_size=settings.pool_max(),
        command_timeout=settings.db.command_timeout,
        server_settings={"application_name": "postgrest-auth"},
        reset=_end_open_transaction,
        init=_decode_json,
    )
