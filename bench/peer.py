"""The service against fastapi-users 15 (bench/peer_app.py) in the same run: same PostgreSQL
server (its own database), same worker count, same bcrypt cost. Issue 13's targets: our sign-in
≥ 1.0 × its sign-in, our token-authenticated GET /auth/user ≥ 1.5 × its GET /users/me, each
against its JWT strategy and its database strategy."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

from .load import Load, rate
from .measure import compare, report
from .results import record
from .stack import ROOT, Stack, free_port, process, run_sql

Strategy = Literal["jwt", "db"]
STRATEGIES: tuple[Strategy, ...] = ("jwt", "db")
PASSWORD = "bench password"
ACCOUNTS = 8  # tokens and sign-ins cycle through them, on both sides
SIGN_IN_TARGET = 1.0
READ_TARGET = 1.5
READ_CONNECTIONS = 32
# Sign-ins run ~100 times slower than reads: a shorter window counts too few to compare.
SIGN_IN_SECONDS = 4.0


def peer_database_url(dsn: str) -> str:
    """The stack's server, database `peer` (made here once), as SQLAlchemy's asyncpg URL."""
    if not run_sql(dsn, "select 1 from pg_database where datname = $1", "peer"):
        run_sql(dsn, "create database peer")
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(scheme="postgresql+asyncpg", path="/peer"))


@contextmanager
def peer_server(stack: Stack) -> Iterator[str]:
    """fastapi-users under uvicorn (uvloop, httptools), as many workers as the service; yields
    its base URL."""
    from . import peer_app  # the bench extra: only needed here

    database_url = peer_database_url(stack.dsn)
    asyncio.run(peer_app.create_tables(database_url))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PEER_DATABASE_URL": database_url,
        "PEER_SECRET": secrets.token_urlsafe(36),
        "PEER_BCRYPT_ROUNDS": str(stack.bcrypt_rounds),
    }
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.peer_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(os.cpu_count() or 1),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    base = f"http://127.0.0.1:{port}"
    with process(args, env, base + "/health", "fastapi-users"):
        yield base


@dataclass
class Accounts:
    """The same accounts on both sides, and an access token of each from each side."""

    ours: list[str]  # usernames
    theirs: list[str]  # emails
    our_tokens: list[str]
    their_tokens: dict[Strategy, list[str]]


def _ok(r: httpx.Response, what: str) -> dict[str, Any]:
    if r.status_code >= 300:  # the body is left out: it may carry a token
        raise RuntimeError(f"{what}: status {r.status_code}")
    return r.json()


def make_accounts(stack: Stack, base: str, prefix: str = "peer") -> Accounts:
    """Signs up ACCOUNTS users on each side and checks that each token reads the user."""
    ours = [f"{prefix}{n}" for n in range(ACCOUNTS)]
    theirs = [f"{prefix}{n}@example.com" for n in range(ACCOUNTS)]
    with httpx.Client(timeout=30) as client:
        our_tokens = []
        for name in ours:
            body = {"username": name, "password": PASSWORD}
            signed_up = _ok(client.post(stack.auth_url + "/users", json=body), "our sign-up")
            our_tokens.append(signed_up["access_token"])
        their_tokens: dict[Strategy, list[str]] = {s: [] for s in STRATEGIES}
        for email in theirs:
            body = {"email": email, "password": PASSWORD}
            _ok(client.post(base + "/auth/register", json=body), "fastapi-users register")
            for s in STRATEGIES:
                form = {"username": email, "password": PASSWORD}
                signed_in = _ok(client.post(f"{base}/auth/{s}/login", data=form), f"{s} login")
                their_tokens[s].append(signed_in["access_token"])
        accounts = Accounts(ours, theirs, our_tokens, their_tokens)
        _ok(client.get(our_read(stack, accounts).url, headers=bearer(our_tokens[0])), "GET /user")
        for s in STRATEGIES:
            me = their_read(base, s, accounts)
            _ok(client.get(me.url, headers=bearer(their_tokens[s][0])), f"{s} /users/me")
    return accounts


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def our_sign_in(stack: Stack, accounts: Accounts) -> Load:
    bodies = [{"username": name, "password": PASSWORD} for name in accounts.ours]
    return Load(stack.auth_url + "/login", method="POST", bodies=bodies)


def their_sign_in(base: str, strategy: Strategy, accounts: Accounts) -> Load:
    """OAuth2's password form, as fastapi-users takes it (its username is the email)."""
    bodies = [{"username": email, "password": PASSWORD} for email in accounts.theirs]
    return Load(f"{base}/auth/{strategy}/login", method="POST", bodies=bodies, form=True)


def our_read(stack: Stack, accounts: Accounts) -> Load:
    return Load(stack.auth_url + "/user", header_cycle=[bearer(t) for t in accounts.our_tokens])


def their_read(base: str, strategy: Strategy, accounts: Accounts) -> Load:
    cycle = [bearer(t) for t in accounts.their_tokens[strategy]]
    return Load(f"{base}/{strategy}/users/me", header_cycle=cycle)


def _compared(
    key: str,
    title: str,
    ours: tuple[str, Load],
    theirs: tuple[str, Load],
    connections: int,
    target: float,
    seconds: float,
    rounds: int,
) -> float:
    result = compare(
        lambda: rate(ours[1], seconds, connections),
        lambda: rate(theirs[1], seconds, connections),
        rounds,
    )
    ratio = report(
        f"{title}, {connections} connections", ours[0], theirs[0], result, f"(target ≥ {target})"
    )
    record(
        "peer",
        **{
            key: {
                "ours": result[0],
                "fastapi_users": result[1],
                "rounds": [list(pair) for pair in result[2]],
                "ratio": ratio,
                "target": target,
                "connections": connections,
            }
        },
    )
    return ratio


def run(stack: Stack, seconds: float, rounds: int) -> float:
    """Every comparison, interleaved; returns the lowest authenticated-read ratio (target 1.5)."""
    with peer_server(stack) as base:
        accounts = make_accounts(stack, base)
        sign_in_connections = 2 * (os.cpu_count() or 1)
        print(
            f"fastapi-users 15 peer: bcrypt cost {stack.bcrypt_rounds} through pwdlib's "
            "BcryptHasher (its default is argon2), same workers, same PostgreSQL server",
            flush=True,
        )
        loads = [our_sign_in(stack, accounts), our_read(stack, accounts)]
        loads += [their_sign_in(base, s, accounts) for s in STRATEGIES]
        loads += [their_read(base, s, accounts) for s in STRATEGIES]
        for load in loads:  # warm up: pools filled, every worker past its first requests
            rate(load, 1, READ_CONNECTIONS if load.method == "GET" else sign_in_connections)
        reads = []
        for s in STRATEGIES:
            _compared(
                f"sign_in_{s}",
                f"Password sign-in vs fastapi-users' {s} strategy",
                ("POST /auth/login (JSON)", our_sign_in(stack, accounts)),
                (f"POST /auth/{s}/login (form)", their_sign_in(base, s, accounts)),
                sign_in_connections,
                SIGN_IN_TARGET,
                max(seconds, SIGN_IN_SECONDS),
                rounds,
            )
        for s in STRATEGIES:
            ratio = _compared(
                f"read_{s}",
                f"Token-authenticated read vs fastapi-users' {s} strategy",
                ("GET /auth/user", our_read(stack, accounts)),
                (f"GET /{s}/users/me", their_read(base, s, accounts)),
                READ_CONNECTIONS,
                READ_TARGET,
                seconds,
                rounds,
            )
            reads.append(ratio)
    record("peer", bcrypt_rounds=stack.bcrypt_rounds, peer_hasher="bcrypt (pwdlib)")
    return min(reads)
