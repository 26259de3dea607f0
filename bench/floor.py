"""Bearer refreshes (POST /auth/refresh_token with an access token: the session extended, a new
access token) against the floor of DESIGN §13, a bare ASGI app doing the same work under the same
server and worker count (bench/floor_app.py). Target: ≥ 0.8 × the floor. Refresh-token rotation
(each refresh answered with a new refresh token, chained) is printed against the same floor."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from . import chained
from .load import Load, rate
from .measure import compare, report
from .results import record
from .stack import ROOT, Stack, free_port, process

CONNECTIONS = 32  # as the issue measured: wrk -c32
ACCOUNTS = 32  # one session per connection: refreshes of one session never queue on its row
TARGET = 0.8


@contextmanager
def floor_server(stack: Stack) -> Iterator[str]:
    """The floor app under uvicorn with the service's worker count; yields its URL."""
    port = free_port()
    workers = os.cpu_count() or 1
    command = [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--port", str(port)]
    command += ["--host", "127.0.0.1", "--workers", str(workers), "--loop", "uvloop"]
    command += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FLOOR_DSN": stack.dsn}
    env["FLOOR_SECRET"] = stack.secret
    url = f"http://127.0.0.1:{port}"
    with process(command, env, url + "/", "the floor app"):
        yield url


def access_tokens(stack: Stack, prefix: str, count: int) -> list[str]:
    """One access token of a fresh account each: sign-ups."""
    tokens = []
    with httpx.Client(timeout=60) as client:
        for n in range(count):
            body = {"username": f"{prefix}{n}", "password": "bench password"}
            answer = client.post(stack.auth_url + "/users", json=body)
            answer.raise_for_status()
            tokens.append(answer.json()["access_token"])
    return tokens


def bearer_load(url: str, tokens: list[str]) -> Load:
    """POST with no body and one account's bearer token per request, cycled."""
    return Load(
        url,
        method="POST",
        header_cycle=[{"Authorization": f"Bearer {t}"} for t in tokens],
    )


def run(stack: Stack, seconds: float, rounds: int) -> float:
    tokens = access_tokens(stack, "benchfloor", ACCOUNTS)
    ours = bearer_load(stack.auth_url + "/refresh_token", tokens)
    with floor_server(stack) as url:
        floor = bearer_load(url + "/refresh", tokens)
        for load in (ours, floor):  # warm up: pools, plans, imports
            rate(load, 1, CONNECTIONS)
        result = compare(
            lambda: rate(ours, seconds, CONNECTIONS),
            lambda: rate(floor, seconds, CONNECTIONS),
            rounds,
        )
        ratio = report(
            f"Bearer refreshes, {CONNECTIONS} connections",
            "POST /auth/refresh_token (bearer)",
            "bare ASGI floor",
            result,
            f"(target >= {TARGET:.2f})",
        )
        sessions = chained.signed_in_sessions(stack.auth_url, "benchrotate", CONNECTIONS)
        rotation_url = stack.auth_url + "/refresh_token"
        chained.rate(rotation_url, "refresh_token", sessions, 1)  # warm up
        rotated = compare(
            lambda: chained.rate(rotation_url, "refresh_token", sessions, seconds),
            lambda: rate(floor, seconds, CONNECTIONS),
            rounds,
        )
        rotation_ratio = report(
            f"Refresh-token rotations, {CONNECTIONS} connections (each answer's token used next)",
            "POST /auth/refresh_token (refresh_token)",
            "bare ASGI floor",
            rotated,
            "(printed, no target: a rotation writes the session row, the floor only reads)",
        )
    record(
        "refresh",
        connections=CONNECTIONS,
        bearer_rate=result[0],
        floor_rate=result[1],
        ratio=ratio,
        target=TARGET,
        rotation_rate=rotated[0],
        rotation_ratio=rotation_ratio,
    )
    return ratio
