"""Refreshes through the GoTrue-compatible API (`POST /auth/v1/token?grant_type=refresh_token`,
which answers the user object too) versus the original API's `POST /auth/refresh_token`: the same
rotation underneath, so the ratio is the cost of GoTrue's larger answer (ceiling about 1.00)."""

from __future__ import annotations

from . import chained
from .measure import compare, report
from .refresh import SESSIONS
from .stack import Stack


def run(stack: Stack, seconds: float, rounds: int) -> float:
    gotrue = chained.signed_in_sessions(stack.auth_url, "benchgotrue", SESSIONS)
    original = chained.signed_in_sessions(stack.auth_url, "benchoriginal", SESSIONS)
    gotrue_url = stack.auth_url + "/v1/token?grant_type=refresh_token"
    original_url = stack.auth_url + "/refresh_token"
    chained.rate(gotrue_url, "refresh_token", gotrue, 1)  # warm up
    chained.rate(original_url, "refresh_token", original, 1)
    result = compare(
        lambda: chained.rate(gotrue_url, "refresh_token", gotrue, seconds),
        lambda: chained.rate(original_url, "refresh_token", original, seconds),
        rounds,
    )
    return report(
        f"GoTrue-API refreshes, {SESSIONS} connections",
        "POST /auth/v1/token?grant_type=refresh_token",
        "POST /auth/refresh_token",
        result,
        "(ceiling about 1.00: the same rotation, a larger answer)",
    )
