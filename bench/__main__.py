"""`python -m bench [postgrest] [logins] [refresh] [gotrue] [mail] [recovery] [rotation] [scale]`:
all by default, in about a minute and the few minutes `scale` takes to make its million
accounts."""

from __future__ import annotations

import argparse
import os
import time

from . import (
    gotrue_refresh,
    logins,
    mail_latency,
    postgrest,
    recovery_timing,
    refresh,
    rotation,
    scale,
)
from .load import generator
from .stack import running_stack

BENCHMARKS = {
    "postgrest": postgrest.run,
    "logins": logins.run,
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
        help="interleaved rounds per comparison (default: 4 for postgrest, 2 else)",
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
    with running_stack(args.bcrypt_rounds) as stack:
        workers = os.cpu_count() or 1
        print(
            f"stack up in {time.monotonic() - started:.1f} s ({workers} service workers)",
            flush=True,
        )
        for name in names:
            rounds = args.rounds or (4 if name == "postgrest" else 2)
            BENCHMARKS[name](stack, args.seconds, rounds)
    print(f"done in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
