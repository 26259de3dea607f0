"""Forgotten-password answers for a known and an unknown username: the lookup and the mail run
after the answer, so both should take the same time (ratio 1.00 ± 0.05), and the answer's
latency tells no one whether an account exists.

A second figure shows what the work after the answer still costs: the latency of a request sent
right after each answer, on the same connection (so the same worker).
"""

from __future__ import annotations

import time
from statistics import median

import httpx

from .results import record
from .stack import Stack

KNOWN = "benchrecovery"
UNKNOWN = "benchnobody"
PROBE = "benchprobe"  # unknown too: only what runs before it differs
MIN_PAIRS = 100  # per round, whatever --seconds says
WARM_UP = 20
SETTLE = 0.01  # s before each measured answer: the previous request's after-work is done


def _latency(client: httpx.Client, username: str) -> float:
    started = time.perf_counter()
    r = client.post("/forgot_password", json={"username": username})
    elapsed = time.perf_counter() - started
    r.raise_for_status()
    return elapsed


def _measure(client: httpx.Client, username: str) -> tuple[float, float]:
    """(the answer's latency, the latency of the request right after it)."""
    time.sleep(SETTLE)
    return _latency(client, username), _latency(client, PROBE)


def _round(client: httpx.Client, seconds: float) -> dict[str, list[tuple[float, float]]]:
    """Sequential requests in ABBA order, so drift hits both sides alike."""
    found: dict[str, list[tuple[float, float]]] = {KNOWN: [], UNKNOWN: []}
    deadline = time.monotonic() + seconds
    pairs = 0
    while pairs < MIN_PAIRS or time.monotonic() < deadline:
        for name in (KNOWN, UNKNOWN) if pairs % 2 == 0 else (UNKNOWN, KNOWN):
            found[name].append(_measure(client, name))
        pairs += 1
    return found


def _ms(values: list[float]) -> str:
    return f"{median(values) * 1000:.2f} ms"


def run(stack: Stack, seconds: float, rounds: int) -> float:
    body = {"username": KNOWN, "password": "bench password", "email": "benchrecovery@example.com"}
    httpx.post(stack.auth_url + "/users", json=body).raise_for_status()
    found: dict[str, list[tuple[float, float]]] = {KNOWN: [], UNKNOWN: []}
    per_round: list[str] = []
    with httpx.Client(base_url=stack.auth_url, timeout=30) as client:
        for _ in range(WARM_UP):
            _measure(client, KNOWN)
            _measure(client, UNKNOWN)
        for _ in range(rounds):
            this = _round(client, seconds)
            for name, values in this.items():
                found[name] += values
            k, u = ([a for a, _ in this[name]] for name in (KNOWN, UNKNOWN))
            per_round.append(f"{median(k) * 1000:.2f}/{median(u) * 1000:.2f}")
    answer = {name: [a for a, _ in values] for name, values in found.items()}
    after = {name: [b for _, b in values] for name, values in found.items()}
    ratio = median(answer[KNOWN]) / median(answer[UNKNOWN])
    after_ratio = median(after[KNOWN]) / median(after[UNKNOWN])
    print(
        f"Forgotten-password answers, sequential, {len(answer[KNOWN])} known and "
        f"{len(answer[UNKNOWN])} unknown usernames"
    )
    print(
        f"  known: {_ms(answer[KNOWN])}   unknown: {_ms(answer[UNKNOWN])}   "
        f"(rounds {'  '.join(per_round)} ms)"
    )
    print(f"  ratio {ratio:.2f}   (target 1.00 ± 0.05: the lookup runs after the answer)")
    print(
        f"  the next request on the connection: after known {_ms(after[KNOWN])}, after "
        f"unknown {_ms(after[UNKNOWN])}, ratio {after_ratio:.2f}   (the work after the answer)",
        flush=True,
    )
    record(
        "recovery",
        known_ms=round(median(answer[KNOWN]) * 1000, 3),
        unknown_ms=round(median(answer[UNKNOWN]) * 1000, 3),
        ratio=round(ratio, 3),
        after_ratio=round(after_ratio, 3),
        target="1.00 ± 0.05",
    )
    return ratio
