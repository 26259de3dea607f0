"""`python -m bench [name ...]`: all by default (about twenty minutes, `scale` making its
million accounts the longest). Every figure goes to bench/results.json, the connection sweep
to bench/results.svg."""

from __future__ import annotations

import argparse
import os
import time
from datetime import date
from pathlib import Path

from . import (
    cold_start,
    floor,
    gotrue_refresh,
    latency,
    logins,
    mail_latency,
    memory,
    peer,
    postgrest,
    recovery_timing,
    refresh,
    rotation,
    scale,
    sweep,
)
from .chart import write_chart
from .load import generator
from .results import RESULTS, record, write
from .stack import running_stack

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "floor": floor.run,
    "logins": logins.run,
    "postgrest": postgrest.run,
    "peer": peer.run,
    "latency": latency.run,
    "start": cold_start.run,
    "memory": memory.run,
    "sweep": sweep.run,
    "refresh": refresh.run,
    "gotrue": gotrue_refresh.run,
    "mail": mail_latency.run,
    "recovery": recovery_timing.run,
    "rotation": rotation.run,
    "scale": scale.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        choices=[[], *BENCHMARKS],
        metavar="name",
        help=f"some of: {', '.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument("--seconds", type=int, default=2, help="per measurement (whole seconds)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds per comparison (default: 5 for postgrest, 2 else)",
    )
    parser.add_argument(
        "--bcrypt-rounds",
        type=int,
        default=10,
        help="the service's passwords.bcrypt_rounds (default 10, as shipped)",
    )
    args = parser.parse_args()
    names = args.names or list(BENCHMARKS)
    started = time.monotonic()
    print(f"load generator: {generator()}", flush=True)
    record("machine", cores=os.cpu_count(), generator=generator())
    RESULTS["date"] = date.today().isoformat()  # type: ignore[assignment]
    try:
        with running_stack(args.bcrypt_rounds) as stack:
            workers = os.cpu_count() or 1
            print(
                f"stack up in {time.monotonic() - started:.1f} s ({workers} service workers)",
                flush=True,
            )
            for name in names:
                rounds = args.rounds or (5 if name == "postgrest" else 2)
                BENCHMARKS[name](stack, args.seconds, rounds)
    finally:  # what was measured is kept, even when a later benchmark fails
        write(HERE / "results.json")
        if "sweep" in RESULTS:
            write_chart(RESULTS, HERE / "results.svg")
        print(f"results in {HERE / 'results.json'}", flush=True)
    print(f"done in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
