"""What `make bench` measured, kept for bench/results.json and bench/results.svg."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# name of a benchmark -> its figures (rates, ratios, targets); filled as the benchmarks run
RESULTS: dict[str, dict[str, Any]] = {}


def record(name: str, **figures: Any) -> None:
    """Keep one benchmark's figures (JSON-serialisable) for results.json."""
    RESULTS.setdefault(name, {}).update(figures)


def write(path: Path) -> None:
    """Into what an earlier run wrote: `python -m bench NAME` refreshes NAME's entry only."""
    kept = json.loads(path.read_text()) if path.exists() else {}
    for name, figures in RESULTS.items():
        if isinstance(figures, dict) and isinstance(kept.get(name), dict):
            kept[name].update(figures)
        else:
            kept[name] = figures
    path.write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")
