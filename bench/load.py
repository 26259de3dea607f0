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
from urllib.parse import urlencode


@dataclass
class Load:
    """One kind of request: method, path, headers and bodies (cycled through), sent as JSON
    unless `form` (application/x-www-form-urlencoded, as OAuth2 password sign-ins take them)."""

    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    # Headers that change from one request to the next (cycled through): one token per account.
    header_cycle: list[dict[str, str]] = field(default_factory=list)
    form: bool = False


def encode_body(load: Load, body: dict[str, Any]) -> str:
    return urlencode(body) if load.form else json.dumps(body)


def generator() -> str:
    return "wrk" if shutil.which("wrk") else "httpx"


def rate(load: Load, seconds: float, connections: int) -> float:
    """Successful requests per second over `seconds`; any non-2xx answer is an error."""
    if generator() == "wrk":
        return _wrk(load, seconds, connections)
    run = asyncio.run(_httpx_run(load, seconds, connections))
    if run.failed:
        raise RuntimeError(f"{run.failed} failed requests to {load.url}")
    return run.rate


def _lua(load: Load) -> str:
    lines = [f"wrk.method = {json.dumps(load.method)}"]
    headers = dict(load.headers)
    if load.bodies:
        form = "application/x-www-form-urlencoded"
        headers["Content-Type"] = form if load.form else "application/json"
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    bodies = ", ".join(json.dumps(encode_body(load, b)) for b in load.bodies)
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


async def _send(client: Any, load: Load, headers: dict[str, str], body: Any) -> Any:
    """One request through httpx, its body as JSON or as a form."""
    if load.form:
        return await client.request(load.method, load.url, headers=headers, data=body)
    return await client.request(load.method, load.url, headers=headers, json=body)


def _nth(load: Load, n: int) -> tuple[dict[str, str], Any]:
    """The n-th request's headers and body, each cycled through its list."""
    body = load.bodies[n % len(load.bodies)] if load.bodies else None
    headers = load.headers
    if load.header_cycle:
        headers = {**headers, **load.header_cycle[n % len(load.header_cycle)]}
    return headers, body


# Percentiles every distribution reports (wrk's own estimates, from its latency histogram).
PERCENTILES = (50.0, 75.0, 90.0, 99.0, 99.9)
_DONE_MARK = "BENCH-RESULT "


@dataclass
class Run:
    """One run's counts and latency distribution: what `rate` reduces to a single figure."""

    requests: int  # answers of any status
    failed: int  # answers of status 400 and above, and socket errors
    seconds: float
    latency: dict[float, float]  # percentile -> seconds
    latency_max: float
    latency_mean: float

    @property
    def rate(self) -> float:
        return (self.requests - self.failed) / self.seconds if self.seconds else 0.0


def distribution(
    load: Load, seconds: float, connections: int, *, allow_failed: bool = False
) -> Run:
    """Counts and the latency distribution over `seconds` (wrk: closed loop, one thread, as
    `rate`). Failed answers stop the run unless `allow_failed`."""
    if generator() == "wrk":
        run = _wrk_run(load, seconds, connections)
    else:
        run = asyncio.run(_httpx_run(load, seconds, connections))
    if run.failed and not allow_failed:
        raise RuntimeError(f"{run.failed} failed requests to {load.url}")
    return run


# wrk's `done` hook: its exact figures (microseconds) as one JSON line, not its rounded text.
_DONE_LUA = """
function done(summary, latency, requests)
  local e = summary.errors
  local parts = {}
  for _, p in ipairs({PERCENTILES}) do
    parts[#parts + 1] = string.format('"%s": %.0f', p, latency:percentile(p))
  end
  io.write(string.format(
    'MARK{"requests": %d, "failed": %d, "us": %.0f, "max": %.0f, "mean": %f, "latency": {%s}}\\n',
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    summary.duration, latency.max, latency.mean, table.concat(parts, ", ")))
end
"""


def _done_lua() -> str:
    percentiles = ", ".join(str(p) for p in PERCENTILES)
    return _DONE_LUA.replace("PERCENTILES", percentiles).replace("MARK", _DONE_MARK)


def _wrk_run(load: Load, seconds: float, connections: int) -> Run:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(_lua(load) + _done_lua() + "\n")
        script.flush()
        duration = f"-d{max(1, round(seconds))}s"
        # wrk's own timeout (2 s) would cut the slowest answers out of the distribution and count
        # them as failures: on a loaded machine those are the tail this measures.
        timeout = f"--timeout={max(30, round(seconds))}s"
        command = ["wrk", "-t1", f"-c{connections}", duration, timeout, "-s", script.name]
        command.append(load.url)
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    line = next((x for x in done.stdout.splitlines() if x.startswith(_DONE_MARK)), None)
    if line is None:
        raise RuntimeError(f"unexpected wrk output: {done.stdout[-500:]}")
    found = json.loads(line[len(_DONE_MARK) :])
    return Run(
        requests=found["requests"],
        failed=found["failed"],
        seconds=found["us"] / 1e6,
        latency={float(p): us / 1e6 for p, us in found["latency"].items()},
        latency_max=found["max"] / 1e6,
        latency_mean=found["mean"] / 1e6,
    )


def _percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def _httpx_run(load: Load, seconds: float, connections: int) -> Run:
    import httpx

    latencies: list[float] = []
    failed = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker(offset: int) -> None:
            nonlocal failed
            n = offset
            while time.monotonic() < deadline:
                headers, body = _nth(load, n)
                sent = time.perf_counter()
                try:
                    r = await _send(client, load, headers, body)
                    failed += r.status_code >= 400
                except httpx.HTTPError:
                    failed += 1
                latencies.append(time.perf_counter() - sent)
                n += connections

        started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(connections)))
        elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    return Run(
        requests=len(ordered),
        failed=failed,
        seconds=elapsed,
        latency={p: _percentile(ordered, p) for p in PERCENTILES},
        latency_max=ordered[-1] if ordered else 0.0,
        latency_mean=sum(ordered) / len(ordered) if ordered else 0.0,
    )
