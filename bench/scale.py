"""The pre-request at scale: PostgREST (db-pre-request = auth.check_token_count) answering the
same cheap GET with bearer tokens of 1,000 sessions spread over a database of 1,000 accounts and
over one of 1,000,000 accounts with 3,000,000 sessions (tests/scale_support.py makes both).

Printed: requests per second of each (median and min of the rounds) and the time per request
at a million over that at a thousand (target: within 1.5x), then the check's own time per call
inside PostgreSQL, measured in a loop over the same tokens' claims.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import ExitStack
from statistics import median
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from postgrest_auth.config import Settings, load_settings
from postgrest_auth.sqltext import quote_ident
from postgrest_auth.store import Store
from postgrest_auth.tokens import TokenIssuer
from tests.scale_support import Scale, build, session_id, session_is_live

from .load import Load, rate
from .results import record
from .stack import (
    ROOT,
    Stack,
    free_port,
    postgrest_binary,
    postgrest_env,
    process,
    run_sql,
    service_config,
)

SCALES = {"1,000 accounts": Scale(1_000, 3_000), "1,000,000 accounts": Scale()}
TOKENS = 1000  # distinct sessions, spread over the table, cycled through by the load
CONNECTIONS = 8
CALLS = 20000  # pre-request calls timed inside PostgreSQL


def sampled_sessions(scale: Scale) -> list[str]:
    """TOKENS live sessions spread evenly over the table."""
    picked = []
    for k in range(TOKENS):
        n = 1 + k * scale.sessions // TOKENS
        while not session_is_live(n):
            n += 1
        picked.append(session_id(n))
    return picked


async def prepare(dsn: str, settings: Settings, scale: Scale) -> tuple[list[str], float]:
    """Migrate and fill the database; the claims of its sampled sessions' access tokens (built
    by the database, as the service has them built), and seconds the data took."""
    seconds = (await build(dsn, settings, scale))["total"]
    store = Store(settings)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute((ROOT / "examples" / "todos.sql").read_text())
        rows = await conn.fetch(
            f"select {store.claims_of}(u, s.id, s.amr)::text as claims"
            f" from {store.sessions} s join {store.users} u on u.id = s.user_id"
            " where s.id = any($1::uuid[])",
            sampled_sessions(scale),
        )
    finally:
        await conn.close()
    return [r["claims"] for r in rows], seconds


async def check_cost(dsn: str, settings: Settings, claims: list[str]) -> float:
    """Microseconds per auth.check_token_count() call as PostgREST makes it (the claims in a
    setting, the check as the token's role), the sampled sessions' claims in turn: the time of
    CALLS calls less that of setting the claims alone, the best of four."""
    check = f"{quote_ident(settings.db.schema_)}.check_token_count()"
    # Both columns are read: the planner drops a stable function's unread column.
    calls = (
        "select count(claims) + count(checked) from (select set_config('request.jwt.claims',"
        " ($1::text[])[1 + i % cardinality($1::text[])], true) as claims, {}::text as checked"
        " from generate_series(0, $2 - 1) i) calls"
    )
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(f"set local role {quote_ident(settings.roles.user)}")
            best = {}
            for _ in range(4):  # the least disturbed counts (the first warms the caches)
                for called in (check, "null"):
                    started = time.perf_counter()
                    await conn.fetchval(calls.format(called), claims, CALLS)
                    elapsed = time.perf_counter() - started
                    best[called] = min(best.get(called, elapsed), elapsed)
        return (best[check] - best["null"]) * 1e6 / CALLS
    finally:
        await conn.close()


def database_dsn(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))


def scaled_database(stack: Stack, scale: Scale) -> tuple[dict[str, str], Load, float]:
    """A database of `scale` beside the stack's: the environment of a PostgREST over it with
    the pre-request, the load of its tokens (PostgREST's port in it), the check's cost."""
    config = service_config(stack.dsn, 0, stack.bcrypt_rounds)  # a secret of its own
    name = f"scale_{scale.users}"
    run_sql(stack.dsn, f'create database "{name}"')
    dsn = database_dsn(stack.dsn, name)
    settings = load_settings(None, {**config, "db": {"connection_string": dsn}}, environ=False)
    claims, made = asyncio.run(prepare(dsn, settings, scale))
    print(f"  {scale.users:,} accounts: data made in {made:.0f} s", flush=True)
    cost = asyncio.run(check_cost(dsn, settings, claims))
    issuer = TokenIssuer(settings)
    port = free_port()
    pre_request = f"{settings.db.schema_}.check_token_count"
    env = postgrest_env(dsn, config["secret"], port, pre_request)
    load = Load(
        f"http://127.0.0.1:{port}/todos?limit=1",
        header_cycle=[
            {"Authorization": f"Bearer {issuer.access_token(json.loads(c))}"} for c in claims
        ],
    )
    return env, load, cost


def run(stack: Stack, seconds: float, rounds: int) -> float:
    rounds = max(rounds, 3)
    print(f"PostgREST GET /todos?limit=1 with the pre-request, {TOKENS} sessions' tokens in turn")
    small, big = SCALES
    databases = {label: scaled_database(stack, scale) for label, scale in SCALES.items()}
    rates: dict[str, list[float]] = {small: [], big: []}
    with ExitStack() as servers:
        for env, load, _ in databases.values():
            url = f"http://127.0.0.1:{env['PGRST_SERVER_PORT']}/"
            servers.enter_context(process([postgrest_binary()], env, url, "PostgREST"))
            rate(load, 1, CONNECTIONS)  # warm the pool and the caches
        for n in range(rounds):  # interleaved: drift hits both alike
            for label in (small, big) if n % 2 == 0 else (big, small):
                rates[label].append(rate(databases[label][1], seconds, CONNECTIONS))
    for label in (small, big):
        figures = rates[label]
        print(
            f"  {label}: median {median(figures):,.0f} req/s, min {min(figures):,.0f}"
            f"   (rounds {'  '.join(f'{r:.0f}' for r in figures)})"
        )
    ratio = median(rates[small]) / median(rates[big])
    print(f"  time per request, {big} over {small}: {ratio:.2f}   (target <= 1.50)")
    cost_small, cost_big = databases[small][2], databases[big][2]
    print(
        f"  auth.check_token_count() inside PostgreSQL: {cost_small:.1f} µs per call at"
        f" {small}, {cost_big:.1f} µs at {big} ({cost_big / cost_small:.2f}x)",
        flush=True,
    )
    record(
        "scale",
        rates={label: rates[label] for label in (small, big)},
        time_ratio=round(ratio, 3),
        target="<= 1.50",
        check_us={small: round(cost_small, 1), big: round(cost_big, 1)},
    )
    return ratio
