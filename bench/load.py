"""Requests per second from a load generator that is not the bottleneck: wrk when installed,
else a bounded httpx.AsyncClient loop (slower: read its figures as lower bounds)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Load:
    """One kind of request: method, path, headers and JSON bodies (cycled through)."""

    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    # Headers that change from one request to the next (cycled through): one token per account.
    header_cycle: list[dict[str, str]] = field(default_factory=list)


def generator() -> str:
    return "wrk" if shutil.which("wrk") else "httpx"


def rate(load: Load, seconds: float, connections: int) -> float:
    """Successful requests per second over `seconds`; any non-2xx answer is an error."""
    if generator() == "wrk":
        return _wrk(load, seconds, connections)
    return asyncio.run(_httpx(load, seconds, connections))


def _lua(load: Load) -> str:
    lines = [f"wrk.method = {json.dumps(load.method)}"]
    headers = dict(load.headers)
    if load.bodies:
        headers["Content-Type"] = "application/json"
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    bodies = ", ".join(json.dumps(json.dumps(b)) for b in load.bodies)
    header_sets = ", ".join(
        "{"
        + ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in {**headers, **c}.items())
        + "}"
        for c in load.header_cycle
    )
    lines += [
        f"local bodies = {{{bodies}}}",
        f"local header_sets = {{{header_sets}}}",
        "local n = 0",
        "function request()",
        "  n = n + 1",
        "  local body = nil",
        "  local headers = nil",
        "  if #bodies > 0 then body = bodies[(n % #bodies) + 1] end",
        "  if #header_sets > 0 then headers = header_sets[(n % #header_sets) + 1] end",
        "  return wrk.format(nil, nil, headers, body)",
        "end",
    ]
    return "\n".join(lines) + "\n"


def _wrk(load: Load, seconds: float, connections: int) -> float:
    # Headers and bodies go in a script, not on the command line: tokens stay out of `ps`.
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(_lua(load))
        script.flush()
        # wrk takes whole seconds.
        duration = f"-d{max(1, round(seconds))}s"
        command = ["wrk", "-t1", f"-c{connections}", duration, "-s", script.name, load.url]
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    out = done.stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed requests to {load.url}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not found:
        raise RuntimeError(f"unexpected wrk output: {out[-500:]}")
    return float(found.group(1))


async def _httpx(load: Load, seconds: float, connections: int) -> float:
    import httpx

    done = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker(offset: int) -> None:
            nonlocal done
            n = offset
            while time.monotonic() < deadline:
                body = load.bodies[n % len(load.bodies)] if load.bodies else None
                headers = load.headers
                if load.header_cycle:
                    headers = {**headers, **load.header_cycle[n % len(load.header_cycle)]}
                r = await client.request(load.method, load.url, headers=headers, json=body)
                if r.status_code >= 300:
                    raise RuntimeError(f"{r.status_code} from {load.url}")
                done += 1
                n += connections

        started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(connections)))
        return done / (time.monotonic() - started)
