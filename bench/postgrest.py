"""PostgREST GET with a bearer token: db-pre-request = auth.check_token_count versus none.

The pre-request is one indexed lookup per request (DESIGN §5); target: ratio ≥ 0.9. An empty
pre-request function is measured too: PostgREST runs any pre-request as one more statement, and
that part of the cost is PostgREST's, not the check's.
"""

from __future__ import annotations

import httpx

from .load import Load, rate
from .measure import compare, report
from .stack import Stack


def seed(stack: Stack) -> str:
    """One user with ten to-dos; its access token."""
    r = httpx.post(
        stack.auth_url + "/users", json={"username": "benchrest", "password": "bench password"}
    )
    r.raise_for_status()
    token = r.json()["access_token"]
    rows = [{"description": f"to-do {n}", "public": n % 2 == 0} for n in range(10)]
    r = httpx.post(
        stack.rest_plain + "/todos", json=rows, headers={"Authorization": f"Bearer {token}"}
    )
    r.raise_for_status()
    return token


def run(stack: Stack, seconds: float, rounds: int) -> float:
    token = seed(stack)
    headers = {"Authorization": f"Bearer {token}"}
    checked = Load(stack.rest_checked + "/todos?order=id", headers=headers)
    plain = Load(stack.rest_plain + "/todos?order=id", headers=headers)
    empty = Load(stack.rest_empty + "/todos?order=id", headers=headers)
    for load in (checked, plain, empty):  # warm the pools and schema caches
        rate(load, 1, 8)
    result = compare(lambda: rate(checked, seconds, 8), lambda: rate(plain, seconds, 8), rounds)
    ratio = report(
        "PostgREST GET /todos with a bearer token",
        "with pre-request auth.check_token_count",
        "without pre-request",
        result,
        "(target >= 0.90)",
    )
    report(
        "  the same, against an empty pre-request function (the check's own cost)",
        "with auth.check_token_count",
        "with an empty pre-request",
        compare(lambda: rate(checked, seconds, 8), lambda: rate(empty, seconds, 8), rounds),
        "(1.00: the check costs nothing beyond PostgREST's extra statement)",
    )
    return ratio
