"""Password logins (POST /auth/refresh_token with username and password) versus the machine's raw
bcrypt rate at the configured cost: the ceiling DESIGN §9 names for logins."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import bcrypt
import httpx

from .load import Load, rate
from .measure import compare, report
from .stack import Stack

PASSWORD = "bench password"


def raw_bcrypt_rate(rounds: int, seconds: float) -> float:
    """bcrypt verifications per second on every core (bcrypt releases the GIL)."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds))
    cores = os.cpu_count() or 1
    deadline = time.monotonic() + seconds

    def work() -> int:
        n = 0
        while time.monotonic() < deadline:
            bcrypt.checkpw(PASSWORD.encode(), hashed)
            n += 1
        return n

    started = time.monotonic()
    with ThreadPoolExecutor(cores) as pool:
        total = sum(pool.map(lambda _: work(), range(cores)))
    return total / (time.monotonic() - started)


def run(stack: Stack, seconds: float, rounds: int) -> float:
    r = httpx.post(stack.auth_url + "/users", json={"username": "benchlogin", "password": PASSWORD})
    r.raise_for_status()
    login = Load(
        stack.auth_url + "/refresh_token",
        method="POST",
        bodies=[{"username": "benchlogin", "password": PASSWORD}],
    )
    connections = 2 * (os.cpu_count() or 1)
    result = compare(
        lambda: rate(login, seconds, connections),
        lambda: raw_bcrypt_rate(stack.bcrypt_rounds, seconds),
        rounds,
    )
    return report(
        f"Password logins at bcrypt cost {stack.bcrypt_rounds}",
        "POST /auth/refresh_token (username, password)",
        "raw bcrypt verifications",
        result,
        "(ceiling 1.00: the raw bcrypt rate)",
    )
