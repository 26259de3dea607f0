"""bench/results.svg: requests per second against connections (1–128), refresh and sign-in side
by side, this service against its floor and fastapi-users, from the "sweep" entry of the
results. Small on purpose: text stays text (no embedded glyphs), no metadata date."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

PANELS = (("refresh", "Bearer refresh"), ("sign-in", "Password sign-in"))
LIMITS = {"floor", "raw bcrypt"}  # what a ratio is measured against: dashed


def write_chart(results: dict[str, Any], path: Path) -> None:
    """Two panels from results["sweep"] = {"connections": [...], "series": {"refresh: NAME":
    [req/s ...], "sign-in: NAME": [...]}}; a series with a None is drawn with a gap there."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = results["sweep"]
    connections = sweep["connections"]
    series: dict[str, list[float | None]] = sweep["series"]
    plt.rcParams["svg.fonttype"] = "none"
    plt.rcParams["svg.hashsalt"] = "postgrest-auth"  # stable ids: a rerun diffs only in figures
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for ax, (kind, title) in zip(axes, PANELS, strict=True):
        for name, rates in series.items():
            panel, _, label = name.partition(": ")
            if panel != kind:
                continue
            values = [float("nan") if r is None else r for r in rates]
            style = "--" if label in LIMITS else "-"
            ax.plot(connections, values, style, marker="o", markersize=3, label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(connections, [str(c) for c in connections])
        ax.set_xlim(min(connections) / 1.2, max(connections) * 1.2)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("connections")
        ax.set_ylabel("requests/s")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    cores = os.cpu_count() or 1
    figure.suptitle(f"postgrest-auth, {cores} cores, {results.get('date') or date.today()}")
    figure.savefig(path, format="svg", metadata={"Date": None})
    plt.close(figure)
