"""The connection pool every request and background task shares.

Behind PgBouncer in transaction mode each transaction may run on another server connection, so
nothing here leaves session state on a pooled connection: no SET outside a transaction, no
LISTEN, no session advisory lock, no temporary table, and (with `db.statement_cache: false`) no
named prepared statement. LISTEN and the migration lock use `db.direct_connection_string`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import asyncpg

from .config import Settings
from .errors import DATABASE_UNAVAILABLE_ERRORS

# asyncpg's own default: named statements, prepared once per connection and kept.
STATEMENT_CACHE_SIZE = 100


def statement_cache_size(settings: Settings) -> int:
    """0 makes asyncpg use the unnamed statement, parsed again with every execution: PgBouncer
    before 1.21 (or without `max_prepared_statements`) passes that through in transaction mode,
    where a named statement prepared on one server connection is missing on the next."""
    return STATEMENT_CACHE_SIZE if settings.db.statement_cache else 0


def direct_dsn(settings: Settings) -> str | None:
    """The connection string past PgBouncer, if one is configured."""
    direct = settings.db.direct_connection_string
    return direct.get_secret_value() if direct is not None else None


async def _end_open_transaction(conn: asyncpg.Connection) -> None:
    """The service leaves no session state on pooled connections (no SET, LISTEN or advisory
    lock held), so asyncpg's default reset, a round trip per release, is skipped; only a
    transaction left open by a cancelled request is rolled back."""
    if conn.is_in_transaction():
        await conn.execute("rollback")


async def _decode_json(conn: asyncpg.Connection) -> None:
    """jsonb (metadata, claims) arrives as Python objects. A built-in type: asyncpg registers
    the codec on the client without a query."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def _one_line_when_away(record: logging.LogRecord) -> bool:
    """asyncpg logs each failed retry of the pool's connection floor with a traceback; while
    the database is away (a restart) that is expected: one line naming the error instead."""
    if record.exc_info and isinstance(record.exc_info[1], DATABASE_UNAVAILABLE_ERRORS):
        record.msg = f"{record.getMessage()} ({type(record.exc_info[1]).__name__})"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
    return True


logging.getLogger("asyncpg.pool").addFilter(_one_line_when_away)


class _Pool(asyncpg.Pool):
    """asyncpg's pool, but no acquire waits longer than `db.acquire_timeout` unless told: a
    database that is away or saturated becomes a 503 (TimeoutError) within it, never a hang."""

    __slots__ = ("_acquire_timeout",)

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self._acquire_timeout if timeout is None else timeout)

    async def _acquire(self, timeout: float | None) -> Any:  # noqa: ASYNC109 (asyncpg's own)
        """asyncpg bounds the wait with a task of its own per acquire (wait_for); a timeout
        scope bounds it the same for a fraction of the cost, paid on every request."""
        if timeout is None:
            return await super()._acquire(None)
        async with asyncio.timeout(timeout):
            return await super()._acquire(None)


async def open_pool(settings: Settings) -> asyncpg.Pool:
    return await _Pool(
        settings.dsn(),
        acquire_timeout=settings.db.acquire_timeout,
        timeout=settings.db.acquire_timeout,  # each new connection's connect, the same bound
        min_size=min(settings.db.pool.min, settings.pool_max()),
        max_size=settings.pool_max(),
        # what asyncpg.create_pool passes, which cannot build a subclass
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=settings.db.command_timeout,
        statement_cache_size=statement_cache_size(settings),
        # A startup parameter PgBouncer tracks and sets again on each server connection it lends.
        server_settings={"application_name": "postgrest-auth"},
        reset=_end_open_transaction,
        init=_decode_json,
    )
