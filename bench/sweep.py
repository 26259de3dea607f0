"""Requests per second against connections (1 to 128), for the chart (bench/results.svg):
bearer refreshes against the floor (bench/floor_app.py), the authenticated read against
fastapi-users' GET /users/me, and password sign-ins against the raw bcrypt rate and
fastapi-users' login. One pass, no rounds: the ratios with their rounds are the other
benchmarks'; this shows how each holds as connections grow."""

from __future__ import annotations

import time

import bcrypt

from . import floor, logins, peer
from .load import Load, rate
from .results import record
from .stack import Stack

CONNECTIONS = [1, 2, 4, 8, 16, 32, 64, 128]
SIGN_IN_SECONDS = 4  # about a hundred sign-ins a second: a shorter window counts too few


def settle(sign_ins_in_flight: int) -> None:
    """Wait out the hashing of sign-ins whose clients are gone: a server finishes what it
    accepted, and on 2 cores that backlog (~60 ms of CPU each) would slow the next figure."""
    time.sleep(0.5 + 0.04 * sign_ins_in_flight)


def run(stack: Stack, seconds: float, rounds: int) -> float:
    tokens = floor.access_tokens(stack, "benchsweep", 32)
    with floor.floor_server(stack) as floor_url, peer.peer_server(stack) as peer_url:
        accounts = peer.make_accounts(stack, peer_url, prefix="sweep")
        loads: dict[str, tuple[Load, float]] = {
            "refresh: postgrest-auth": (
                floor.bearer_load(stack.auth_url + "/refresh_token", tokens),
                seconds,
            ),
            "refresh: floor": (floor.bearer_load(floor_url + "/refresh", tokens), seconds),
            "refresh: postgrest-auth GET /user": (peer.our_read(stack, accounts), seconds),
            "refresh: fastapi-users GET /users/me": (
                peer.their_read(peer_url, "jwt", accounts),
                seconds,
            ),
            "sign-in: postgrest-auth": (peer.our_sign_in(stack, accounts), SIGN_IN_SECONDS),
            "sign-in: fastapi-users": (
                peer.their_sign_in(peer_url, "jwt", accounts),
                SIGN_IN_SECONDS,
            ),
        }
        for load, _ in loads.values():  # warm up: pools, plans, imports
            rate(load, 1, 8)
            settle(8)
        series: dict[str, list[float | None]] = {name: [] for name in loads}
        for kind in ("refresh", "sign-in"):  # sign-ins' leftover hashing stays out of refreshes
            for connections in CONNECTIONS:
                for name, (load, window) in loads.items():
                    if name.startswith(kind):
                        series[name].append(round(rate(load, window, connections), 1))
                        settle(connections if kind == "sign-in" else 0)
                print(
                    f"  {kind}, {connections:>3} connections: "
                    + ", ".join(
                        f"{name.partition(': ')[2]} {values[-1]:,.0f}"
                        for name, values in series.items()
                        if name.startswith(kind)
                    ),
                    flush=True,
                )
    stored = bcrypt.hashpw(logins.PASSWORD.encode(), bcrypt.gensalt(stack.bcrypt_rounds))
    fastest = max(
        logins.on_every_core(logins.raw_verify(backend, stored), SIGN_IN_SECONDS)
        for backend in logins.backends()
    )
    series["sign-in: raw bcrypt"] = [round(fastest, 1)] * len(CONNECTIONS)
    record("sweep", connections=CONNECTIONS, series=series)
    ours = series["refresh: postgrest-auth"]
    return max(r or 0 for r in ours) / max(r or 0 for r in series["refresh: floor"])
