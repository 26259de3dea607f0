"""The outbox queries the worker's sleep depends on, against real PostgreSQL."""

import asyncio

import asyncpg

from postgrest_auth.migrate import migrate
from postgrest_auth.store import Store

from .support import make_settings


def test_an_empty_outbox_lets_the_worker_sleep(dsn):
    """An empty queue is None (sleep until NOTIFY), not 0 (which made an idle worker spin)."""
    settings = make_settings(dsn)
    store = Store(settings)

    async def check() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn, settings)
            assert await store.seconds_until_next_mail(conn) is None
            await store.enqueue_mail(conn, "welcome", "a@example.com", "Hi", "Hello", None)
            assert await store.seconds_until_next_mail(conn) == 0.0
            claimed = await store.claim_mail(conn, 60, 10)
            assert len(claimed) == 1
            waiting = await store.seconds_until_next_mail(conn)
            assert waiting is not None and 55 < waiting <= 60  # leased, not due
            await store.mark_sent(conn, claimed[0]["id"])
            assert await store.seconds_until_next_mail(conn) is None
        finally:
            await conn.close()

    asyncio.run(check())
