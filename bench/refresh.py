"""Refresh-token refreshes (POST /auth/refresh_token with refresh_token, each rotating it) versus
a bare `select 1` round trip over asyncpg at the same concurrency: refreshes should be bounded by
the database round trip, not by Python overhead (DESIGN §9)."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from . import chained
from .measure import compare, report
from .stack import Stack

CONNECTIONS = 8
SESSIONS = CONNECTIONS  # distinct sessions: concurrent refreshes do not queue on one row lock


async def _select_one_rate(dsn: str, seconds: float) -> float:
    pool = await asyncpg.create_pool(dsn, min_size=CONNECTIONS, max_size=CONNECTIONS)
    try:
        done = 0
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with pool.acquire() as conn:
                    await conn.fetchval("select 1")
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return done / (time.monotonic() - started)
    finally:
        await pool.close()


def select_one_rate(dsn: str, seconds: float) -> float:
    return asyncio.run(_select_one_rate(dsn, seconds))


def run(stack: Stack, seconds: float, rounds: int) -> float:
    # Each refresh rotates the token, so each request carries the one the last answer gave.
    sessions = chained.signed_in_sessions(stack.auth_url, "benchrefresh", SESSIONS)
    url = stack.auth_url + "/refresh_token"
    chained.rate(url, "refresh_token", sessions, 1)  # warm up
    result = compare(
        lambda: chained.rate(url, "refresh_token", sessions, seconds),
        lambda: select_one_rate(stack.dsn, seconds),
        rounds,
    )
    return report(
        f"Token refreshes, {CONNECTIONS} connections",
        "POST /auth/refresh_token (refresh_token)",
        "asyncpg `select 1`",
        result,
        "(ceiling 1.00: the bare database round trip)",
    )
