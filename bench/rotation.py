"""Refresh with rotation versus without, at the same worker count and connections.

Every refresh with a refresh token rotates it now: the session row takes the new token's hash
and the old one is retired, one statement that writes, where the refresh used to be a read (the
expiry moved at most once a minute). Without rotation is the service as it was before, started
beside the shipped one for this benchmark only (bench/refresh_variants.py: the old statement,
the same token answered back; everything else shipped code). Target: rotation keeps at least
85 % of the throughput.

Also measured, because it decided how the rotation commits: the same rotation with its commit
waiting for the WAL flush (synchronous_commit on; shipped: off for that transaction), over HTTP
and as statements alone (asyncpg, no HTTP); and the refresh that never rotates (bearer access
token: a JWT to verify instead of a token to hash and derive).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import asyncpg

from postgrest_auth.config import load_settings
from postgrest_auth.store import Store

from . import chained
from .measure import compare, report
from .refresh_variants import before_rotation_sql, synchronous_rotation_sql
from .stack import ROOT, Stack, free_port, process, service_config

CONNECTIONS = 8  # one session each: refreshes do not queue on one row lock

Statement = Callable[[asyncpg.Connection, int], Awaitable[None]]


@contextmanager
def variant_service(stack: Stack, variant: str) -> Iterator[str]:
    """A variant of the service on the same database, with the same workers; its URL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pa-bench-") as workdir:
        config_file = Path(workdir) / "postgrest-auth.json"
        config = service_config(stack.dsn, port, stack.bcrypt_rounds)
        config["db"]["auto_migrate"] = False
        config_file.write_text(json.dumps(config))
        url = f"http://127.0.0.1:{port}/auth"
        command = [sys.executable, "-m", "bench.refresh_variants", variant]
        command += ["--config", str(config_file)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with process(command, env, url + "/health", f"the {variant} service"):
            yield url


class Refreshes:
    """Chained refreshes against one service, over sessions of their own."""

    def __init__(self, auth_url: str, name: str, kind: chained.Kind = "refresh_token") -> None:
        self.url = auth_url + "/refresh_token"
        self.kind = kind
        self.sessions = chained.signed_in_sessions(auth_url, name, CONNECTIONS)
        self.rate(1)  # warm up

    def rate(self, seconds: float) -> float:
        return chained.rate(self.url, self.kind, self.sessions, seconds)


def http_rates(stack: Stack, seconds: float, rounds: int) -> float:
    workers = f"{CONNECTIONS} connections, {os.cpu_count()} workers each"
    with ExitStack() as running:
        shipped = Refreshes(stack.auth_url, "benchrotation")
        before = Refreshes(
            running.enter_context(variant_service(stack, "before_rotation")), "benchbefore"
        )
        synchronous = Refreshes(
            running.enter_context(variant_service(stack, "synchronous_rotation")), "benchsync"
        )
        ratio = report(
            f"Refresh with rotation vs without, {workers}",
            "refresh_token, rotating",
            "refresh_token, before rotation",
            compare(lambda: shipped.rate(seconds), lambda: before.rate(seconds), rounds),
            "(target ≥ 0.85: rotation costs under 15 % of throughput)",
        )
        report(
            f"Rotation's commit, {workers}",
            "rotating, asynchronous commit (shipped)",
            "rotating, synchronous commit",
            compare(lambda: shipped.rate(seconds), lambda: synchronous.rate(seconds), rounds),
            "(what waiting for the WAL flush costs, as a gain)",
        )
    bearer = Refreshes(stack.auth_url, "benchbearer", "bearer")
    report(
        f"Refresh by refresh token vs by access token, {workers}",
        "refresh_token, rotating",
        "bearer access token (never rotates)",
        compare(lambda: shipped.rate(seconds), lambda: bearer.rate(seconds), rounds),
        "(for comparison)",
    )
    return ratio


async def _statement_rate(dsn: str, seconds: float, statement: Statement) -> float:
    pool = await asyncpg.create_pool(dsn, min_size=CONNECTIONS, max_size=CONNECTIONS)
    try:
        done = 0
        deadline = time.monotonic() + seconds

        async def worker(n: int) -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with pool.acquire() as conn:
                    await statement(conn, n)
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker(n) for n in range(CONNECTIONS)))
        return done / (time.monotonic() - started)
    finally:
        await pool.close()


def statement_rates(stack: Stack, seconds: float, rounds: int) -> None:
    sessions = chained.signed_in_sessions(stack.auth_url, "benchstatements", CONNECTIONS)
    hashes = [hashlib.sha256(s.refresh_token.encode()).digest() for s in sessions]
    overrides = {"secret": secrets.token_urlsafe(36), "db": {"connection_string": stack.dsn}}
    store = Store(load_settings(None, overrides, environ=False))
    old_sql = before_rotation_sql(store)

    def rotating(sql: str) -> Statement:
        async def rotate(conn: asyncpg.Connection, n: int) -> None:
            successor = secrets.token_bytes(32)  # the database sees hashes only
            after = secrets.token_bytes(32)
            if await conn.fetchrow(sql, hashes[n], successor, after) is None:
                raise RuntimeError("a benchmark session stopped rotating")
            hashes[n] = successor

        return rotate

    async def read(conn: asyncpg.Connection, n: int) -> None:
        if await conn.fetchrow(old_sql, hashes[n]) is None:
            raise RuntimeError("a benchmark session ended")

    def rate(statement: Statement) -> Callable[[], float]:
        return lambda: asyncio.run(_statement_rate(stack.dsn, seconds, statement))

    shipped = rate(rotating(store._rotate_sql()))
    title = f"Refresh statements alone, {CONNECTIONS} connections (asyncpg, no HTTP)"
    report(
        title,
        "rotate, asynchronous commit (shipped)",
        "rotate, synchronous commit",
        compare(shipped, rate(rotating(synchronous_rotation_sql(store))), rounds),
        "(what waiting for the WAL flush costs, as a gain)",
    )
    report(
        title,
        "rotate, asynchronous commit (shipped)",
        "pre-rotation refresh (a read)",
        compare(shipped, rate(read), rounds),
        "(the database's share of rotation)",
    )


def run(stack: Stack, seconds: float, rounds: int) -> float:
    ratio = http_rates(stack, seconds, rounds)
    statement_rates(stack, seconds, rounds)
    return ratio
