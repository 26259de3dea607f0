"""Mail delivery latency: from a request's commit to acceptance by the SMTP server (DESIGN §6).

The service runs as its own process with an idle mail worker waiting on LISTEN/NOTIFY; each of
`--count` sequential `change_email` requests queues one mail (to the old address) in the
transaction of its change. (`forgot_password` is not used: its mail is queued after the answer,
after a random pause, on purpose.) For each we
take the time the response came back and the time the aiosmtpd handler received the message
(end of DATA), in this process, on one monotonic clock. The floor is one direct aiosmtplib send of
a similar message to the same server: what is left above it is NOTIFY, claim and bookkeeping.

    python -m bench.mail_latency [--count 50]

`run(stack, seconds, rounds)` does the same beside `python -m bench`'s stack, in its own schema
so the stack's console-mail service never takes these mails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
from aiosmtpd.controller import Controller

from .stack import ROOT, database, free_port, process

SCHEMA = "mail_bench"
ADDRESS = "latency@example.com"
ADDRESSES = (ADDRESS, "latency2@example.com")  # change_email alternates between them


class Clocked:
    """aiosmtpd handler noting when each message was accepted."""

    def __init__(self) -> None:
        self.received: list[float] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.arrived:
            self.received.append(time.perf_counter())
            self.arrived.notify_all()
        return "250 OK"

    def wait_count(self, count: int, timeout: float = 30.0) -> float:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise RuntimeError(f"mail {count} did not arrive within {timeout} s")
            return self.received[count - 1]


def _config(dsn: str, port: int, smtp_port: int) -> dict[str, Any]:
    return {
        "secret": secrets.token_urlsafe(36),
        "host": "127.0.0.1",
        "port": port,
        "log_level": "warning",
        # LISTEN needs the direct connection (without one the worker polls every second)
        "db": {"connection_string": dsn, "direct_connection_string": dsn, "schema": SCHEMA},
        "email": {
            "backend": "smtp",
            "host": "127.0.0.1",
            "port": smtp_port,
            "starttls": False,
            "from": "auth@example.com",
            "backoff_initial": 0.2,
            "backoff_max": 1,
        },
        "passwords": {"bcrypt_rounds": 4},
        "rate_limit": {"enabled": False},
    }


def _direct_send_floor(smtp_port: int, handler: Clocked, samples: int = 20) -> float:
    """Median seconds of one aiosmtplib send (connect to acceptance) of a similar message."""

    async def go() -> list[float]:
        times = []
        for _ in range(samples):
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "a@example.com", ADDRESS, "x"
            message.set_content("floor " * 60)
            expected = len(handler.received) + 1
            began = time.perf_counter()
            await aiosmtplib.send(message, hostname="127.0.0.1", port=smtp_port, start_tls=False)
            times.append(handler.wait_count(expected) - began)
        return times

    return statistics.median(asyncio.run(go()))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def measure(dsn: str, count: int = 50) -> dict[str, float]:
    handler = Clocked()
    smtp_port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        with tempfile.TemporaryDirectory(prefix="pa-mail-bench-") as workdir:
            port = free_port()
            config_file = Path(workdir) / "postgrest-auth.json"
            config_file.write_text(json.dumps(_config(dsn, port, smtp_port)))
            url = f"http://127.0.0.1:{port}/auth"
            with (
                process(
                    [sys.executable, "-m", "postgrest_auth", "--config", str(config_file)],
                    {**os.environ, "PYTHONPATH": str(ROOT)},
                    url + "/health",
                    "the service",
                ),
                httpx.Client(base_url=url, timeout=30) as http,
            ):
                user = {"username": "latency", "password": "latency-bench-pw", "email": ADDRESS}
                response = http.post("/users", json=user)
                response.raise_for_status()
                handler.wait_count(1)  # the welcome mail; the worker is now idle
                from_response, from_request = [], []
                for i in range(count):
                    time.sleep(0.02)  # let the worker settle back into its NOTIFY wait
                    began = time.perf_counter()
                    new_address = ADDRESSES[(i + 1) % 2]
                    response = http.post("/change_email", json={**user, "email": new_address})
                    returned = time.perf_counter()
                    response.raise_for_status()
                    accepted = handler.wait_count(i + 2)
                    from_response.append(accepted - returned)
                    from_request.append(accepted - began)
            floor = _direct_send_floor(smtp_port, handler)
    finally:
        controller.stop()
    return {
        "count": count,
        "median": statistics.median(from_response),
        "p90": _percentile(from_response, 90),
        "p99": _percentile(from_response, 99),
        "max": max(from_response),
        "min": min(from_response),
        "request_median": statistics.median(from_request),
        "request_p99": _percentile(from_request, 99),
        "floor": floor,
    }


def report(result: dict[str, float]) -> None:
    print(f"mail latency, {int(result['count'])} sequential change_email, idle worker on NOTIFY")
    print(
        f"  response returned -> SMTP accepted: median {_ms(result['median'])}"
        f"  p90 {_ms(result['p90'])}  p99 {_ms(result['p99'])}"
        f"  min {_ms(result['min'])}  max {_ms(result['max'])}"
    )
    print(
        f"  request sent      -> SMTP accepted: median {_ms(result['request_median'])}"
        f"  p99 {_ms(result['request_p99'])}"
    )
    print(
        f"  floor: one direct aiosmtplib send, median {_ms(result['floor'])};"
        f" median latency / floor = {result['median'] / result['floor']:.1f}x",
        flush=True,
    )


def run(stack: Any, seconds: int, rounds: int) -> None:
    """Entry point shaped like the other benchmarks; `seconds`/`rounds` do not apply."""
    report(measure(stack.dsn))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mail_latency", description=__doc__)
    parser.add_argument("--count", type=int, default=50, help="mails to time (default 50)")
    args = parser.parse_args()
    with database() as dsn:
        report(measure(dsn, args.count))


if __name__ == "__main__":
    main()
