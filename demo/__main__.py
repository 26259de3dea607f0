"""`python -m demo [--mode bearer|cookie|supabase] [--port 8080]`: the to-do demo at one URL until
Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from .stack import Stack, StackError, port_is_free


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument(
        "--mode",
        choices=["bearer", "cookie", "supabase"],
        default="bearer",
        help="bearer: tokens in page memory; cookie: HttpOnly session cookie;"
        " supabase: @supabase/supabase-js for sign-in and the to-dos",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8080,
        help="port for nginx on 127.0.0.1 (another free one if it is taken)",
    )
    args = parser.parse_args(argv)

    # SIGTERM and SIGHUP unwind like Ctrl-C does, so the stack is always stopped.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    port = args.port if port_is_free(args.port) else None
    print(
        f"Starting PostgreSQL, PostgREST, postgrest-auth, nginx and Test OIDC"
        f" ({args.mode} mode)...",
        flush=True,
    )
    stack = Stack(mode=args.mode, port=port)
    try:
        stack.start()
        print(f"\n    {stack.url}\n", flush=True)
        print(
            f"Mail (password resets) is written to {stack.mail_dir}/ as .eml files; "
            f'logs are in {stack.work_dir}/. "Sign in with Test OIDC" takes alice@example.test'
            " (any password). Stop with Ctrl-C.",
            flush=True,
        )
        exited = stack.wait()
        print(
            f"{exited.name} exited unexpectedly; its log ends with:\n"
            f"{exited.log.read_text(errors='replace')[-2000:]}",
            file=sys.stderr,
        )
        return 1
    except StackError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit):
        return 0
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        print("Stopping...", flush=True)
        stack.stop()
        print("Stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
