"""Interleaved rounds, so drift (other load, caches warming) hits both sides of a ratio alike."""

from __future__ import annotations

from collections.abc import Callable
from statistics import mean
from typing import Any

from .results import RESULTS


def compare(
    a: Callable[[], float], b: Callable[[], float], rounds: int
) -> tuple[float, float, list[tuple[float, float]]]:
    """Mean rate of `a` and of `b` over `rounds` rounds run in ABBA order, and every round."""
    pairs: list[tuple[float, float]] = []
    for n in range(rounds):
        if n % 2 == 0:
            ra = a()
            rb = b()
        else:
            rb = b()
            ra = a()
        pairs.append((ra, rb))
    return mean(p[0] for p in pairs), mean(p[1] for p in pairs), pairs


def report(
    title: str, label_a: str, label_b: str, result: tuple[float, float, list[Any]], target: str
) -> float:
    rate_a, rate_b, pairs = result
    ratio = rate_a / rate_b if rate_b else float("nan")
    rounds = "  ".join(f"{x:.0f}/{y:.0f}" for x, y in pairs)
    print(f"{title}")
    print(f"  {label_a}: {rate_a:,.1f} req/s   {label_b}: {rate_b:,.1f} /s   (rounds {rounds})")
    print(f"  ratio {ratio:.2f}   {target}", flush=True)
    compared = RESULTS.setdefault("compared", {})
    compared[title.strip()] = {
        label_a: round(rate_a, 1),
        label_b: round(rate_b, 1),
        "ratio": round(ratio, 3),
        "target": target,
        "rounds": [[round(x, 1), round(y, 1)] for x, y in pairs],
    }
    return ratio
