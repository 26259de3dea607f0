"""PostgREST GET with the pre-request functions versus PostgREST without one, or an empty one.

The pre-request is one indexed lookup per request (DESIGN §5). PostgREST runs any pre-request as
one more statement, so the check's own cost is its ratio to an empty pre-request function; its
ratio to no pre-request at all includes PostgREST's part. Each ratio is the median of the
interleaved rounds' ratios (at least five), with the worst round printed beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import median

import httpx

from .load import Load, rate
from .measure import compare
from .results import record
from .stack import Stack

CONNECTIONS = 8  # PostgREST's pool (PGRST_DB_POOL)
MIN_ROUNDS = 5
TARGETS = {"check_vs_none": 0.90, "check_vs_empty": 0.97, "cookie_vs_empty": 0.90}


def seed(stack: Stack) -> tuple[str, str]:
    """One user with ten public to-dos; its access token and its session's token (the cookie).

    The to-dos are all public so that an anonymous request (the cookie is nothing to an empty
    pre-request) reads the same rows as the signed-in one: only the pre-request differs.
    """
    r = httpx.post(
        stack.auth_url + "/users", json={"username": "benchrest", "password": "bench password"}
    )
    r.raise_for_status()
    token, session_token = r.json()["access_token"], r.json()["refresh_token"]
    rows = [{"description": f"to-do {n}", "public": True} for n in range(10)]
    r = httpx.post(
        stack.rest_plain + "/todos", json=rows, headers={"Authorization": f"Bearer {token}"}
    )
    r.raise_for_status()
    return token, session_token


def ratios(
    a: Callable[[], float], b: Callable[[], float], rounds: int
) -> tuple[float, float, list[tuple[float, float]]]:
    """Median and lowest ratio a/b over interleaved rounds (ABBA), and every round's rates."""
    _, _, pairs = compare(a, b, max(rounds, MIN_ROUNDS))
    per_round = [x / y for x, y in pairs]
    return median(per_round), min(per_round), pairs


def show(
    title: str, result: tuple[float, float, list[tuple[float, float]]], target: float | None
) -> None:
    middle, lowest, pairs = result
    rounds = "  ".join(f"{x:.0f}/{y:.0f}" for x, y in pairs)
    goal = f"(target >= {target:.2f})" if target else "(no target: what the others start from)"
    print(title)
    print(f"  req/s per round: {rounds}")
    print(f"  ratio median {middle:.3f}  min {lowest:.3f}   {goal}", flush=True)


def run(stack: Stack, seconds: float, rounds: int) -> float:
    token, session_token = seed(stack)
    bearer = {"Authorization": f"Bearer {token}"}
    path = "/todos?order=id"
    checked = Load(stack.rest_checked + path, headers=bearer)
    plain = Load(stack.rest_plain + path, headers=bearer)
    empty = Load(stack.rest_empty + path, headers=bearer)
    # The cookie as a browser sends it; the same cookie reaches the empty pre-request, which
    # reads nothing and so serves the same rows anonymously.
    cookie = {"Cookie": f"session_token={session_token}"}
    cookied = Load(stack.rest_cookie + path, headers=cookie)
    empty_cookie = Load(stack.rest_empty + path, headers=cookie)
    body = httpx.get(checked.url, headers=bearer).json()
    for load in (plain, empty, cookied, empty_cookie):  # same rows everywhere
        if httpx.get(load.url, headers=load.headers).json() != body:
            raise RuntimeError(f"{load.url} answers other rows than {checked.url}")
    for load in (checked, plain, empty, cookied, empty_cookie):  # warm pools and schema caches
        rate(load, 1, CONNECTIONS)

    def measure(load: Load) -> Callable[[], float]:
        return lambda: rate(load, seconds, CONNECTIONS)

    none = ratios(measure(checked), measure(plain), rounds)
    show(
        "PostgREST GET /todos, bearer token: auth.check_token_count / no pre-request",
        none,
        TARGETS["check_vs_none"],
    )
    vs_empty = ratios(measure(checked), measure(empty), rounds)
    show(
        "  the same / an empty pre-request function (the check's own cost)",
        vs_empty,
        TARGETS["check_vs_empty"],
    )
    share = ratios(measure(empty), measure(plain), rounds)
    show(
        "  an empty pre-request function / no pre-request (PostgREST's own extra statement)",
        share,
        None,
    )
    cookies = ratios(measure(cookied), measure(empty_cookie), rounds)
    show(
        "PostgREST GET /todos, session cookie: auth.authenticate / an empty pre-request function",
        cookies,
        TARGETS["cookie_vs_empty"],
    )
    figures: dict[str, object] = {"connections": CONNECTIONS, "seconds": seconds}
    for name, (middle, lowest, pairs) in (
        ("check_vs_none", none),
        ("check_vs_empty", vs_empty),
        ("empty_vs_none", share),
        ("cookie_vs_empty", cookies),
    ):
        figures[name] = {
            "median": round(middle, 3),
            "min": round(lowest, 3),
            "target": TARGETS.get(name),
            "rates_median": [round(median(p[i] for p in pairs), 1) for i in (0, 1)],
            "rounds": [[round(x, 1), round(y, 1)] for x, y in pairs],
        }
    record("postgrest", **figures)
    return none[0]
