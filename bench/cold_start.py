"""Cold start: from spawning `python -m postgrest_auth --config FILE` to the first 200 from
GET /auth/health, on the stack's database (already migrated, so the start-up migration finds
nothing to apply). Limit 1.5 s (issue 13), with 1 worker and with one per core.

Bytecode is cached as an installed wheel's is (PYTHONPYCACHEPREFIX, filled by a start that is
not counted): a checkout run with PYTHONDONTWRITEBYTECODE would compile every module each time.
The service logs at info level so the moments of its start can be told apart: the supervisor
ready (imports, settings, migration check done) and each worker's application started (a
spawned interpreter importing the app again, its pool opened). The CPU seconds the process tree
spent until the first answer are printed too: unlike the wall time, they barely move when other
work shares the machine.
"""

from __future__ import annotations

import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import IO

from .memory import all_pids, parent_pid
from .results import record
from .stack import ROOT, Stack, free_port, service_config, stop

LIMIT = 1.5  # seconds
RUNS = 5
POLL = 0.005  # seconds between connection attempts
GIVE_UP = 30.0


@dataclass
class Start:
    answered: float  # seconds from spawn to the first 200
    cpu: float  # CPU seconds the service's processes spent until then
    supervisor: float | None  # seconds to "Started parent process" (several workers only)
    workers: list[float]  # seconds to each "Application startup complete."


class Timeline:
    """The child's output lines, each stamped as it arrives (a reader thread)."""

    def __init__(self, stream: IO[bytes], started: float) -> None:
        self.lines: list[tuple[float, str]] = []
        self.started = started
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.lines.append((time.perf_counter() - self.started, raw.decode(errors="replace")))

    def times(self, marker: str) -> list[float]:
        return [t for t, line in list(self.lines) if marker in line]

    def tail(self) -> str:
        return "".join(line for _, line in self.lines[-20:])


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its children still alive (workers, resource tracker)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for child in [pid, *(p for p in all_pids() if parent_pid(p) == pid)]:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _health(port: int, prefix: str) -> int | None:
    """The status of one GET on a fresh connection; None if refused or cut before one."""
    request = f"GET {prefix}/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP) as sock:
            sock.sendall(request.encode())
            line = sock.makefile("rb").readline()
    except OSError:
        return None
    found = re.match(rb"HTTP/1\.[01] (\d{3})", line)
    return int(found.group(1)) if found else None


def start_once(dsn: str, workers: int, directory: Path) -> Start:
    port = free_port()
    config = {**service_config(dsn, port, 10), "workers": workers, "log_level": "info"}
    config_file = directory / f"cold-{port}.json"
    config_file.write_text(json.dumps(config))
    env = _env(directory)
    command = [sys.executable, "-m", "postgrest_auth", "--config", str(config_file)]
    started = time.perf_counter()
    child = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT
    )
    assert child.stdout is not None
    timeline = Timeline(child.stdout, started)
    try:
        while True:
            if child.poll() is not None or time.perf_counter() - started > GIVE_UP:
                raise RuntimeError(
                    f"the service did not start within {GIVE_UP} s:\n{timeline.tail()}"
                )
            if _health(port, "/auth") == 200:
                answered = time.perf_counter() - started
                cpu = cpu_seconds(child.pid)
                break
            time.sleep(POLL)
    finally:
        stop(child, within=20)
        timeline.thread.join(timeout=5)
    parent = [t for t in timeline.times("Started parent process") if t <= answered]
    ready = [t for t in timeline.times("Application startup complete") if t <= answered]
    return Start(answered, cpu, parent[0] if parent else None, ready)


def _env(directory: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(ROOT), PYTHONPYCACHEPREFIX=str(directory / "pycache"))
    return env


def warm_bytecode(directory: Path) -> None:
    """Fill the bytecode cache in one process first: a spawned worker compiling the standard
    library and every dependency could miss uvicorn's 5 s health check and be replaced, again
    and again, on a loaded machine."""
    modules = "postgrest_auth.cli, postgrest_auth.app, uvicorn.supervisors, multiprocessing.spawn"
    command = [sys.executable, "-c", f"import {modules}"]
    subprocess.run(command, cwd=ROOT, env=_env(directory), check=True)


def import_profile(
    directory: Path, module: str = "postgrest_auth.app", top: int = 10
) -> tuple[float, float, list[tuple[float, str]]]:
    """`python -X importtime -c "import MODULE"`: its wall and CPU seconds, and the `top`
    imports by cumulative time (seconds, module), MODULE itself left out."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(directory),
        check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    rows = []
    for line in done.stderr.splitlines():
        found = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if found and found.group(2) != module:
            rows.append((int(found.group(1)) / 1e6, found.group(2)))
    rows.sort(key=lambda r: r[0], reverse=True)
    return wall, cpu, rows[:top]


def _s(values: list[float]) -> str:
    return f"{median(values):.2f} s" if values else "-"


def run(stack: Stack, seconds: float, rounds: int) -> float:
    """Median of 5 starts per worker count, min too; returns the worse median / 1.5 s."""
    counts = sorted({1, os.cpu_count() or 1})
    starts: dict[int, list[Start]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory(prefix="pa-cold-") as name:
        directory = Path(name)
        warm_bytecode(directory)
        for n in counts:  # not counted: whatever the warming missed
            start_once(stack.dsn, n, directory)
        for _ in range(RUNS):  # interleaved: drift in the machine's load hits both alike
            for n in counts:
                starts[n].append(start_once(stack.dsn, n, directory))
        wall, cpu, top = import_profile(directory)
        # What a supervisor needs before it binds and spawns, were the app imported lazily:
        _, cli_cpu, _ = import_profile(directory, "postgrest_auth.cli")
    print(f"Cold start to the first 200 from GET /auth/health (database up to date), {RUNS} runs")
    print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    worst = 0.0
    figures = {}
    for n in counts:
        answered = sorted(s.answered for s in starts[n])
        ratio = median(answered) / LIMIT
        worst = max(worst, ratio)
        cpus = [s.cpu for s in starts[n]]
        parents = [s.supervisor for s in starts[n] if s.supervisor is not None]
        ready = [min(s.workers) for s in starts[n] if s.workers]
        print(
            f"  {n} worker{'s' if n > 1 else ''}: median {median(answered):.2f} s, min"
            f" {answered[0]:.2f} s, max {answered[-1]:.2f} s; {median(cpus):.2f} CPU s"
        )
        steps = f"supervisor ready at {_s(parents)}, " if parents else ""
        print(f"    {steps}first worker's application started at {_s(ready)}")
        print(f"  ratio {ratio:.2f}   (limit 1.00: {LIMIT} s)")
        figures[f"workers_{n}"] = {
            "median_s": round(median(answered), 3),
            "min_s": round(answered[0], 3),
            "max_s": round(answered[-1], 3),
            "cpu_s": round(median(cpus), 3),
            "supervisor_ready_s": round(median(parents), 3) if parents else None,
            "worker_ready_s": round(median(ready), 3) if ready else None,
            "ratio": round(ratio, 3),
        }
    print(f"  `import postgrest_auth.app`: {wall:.2f} s ({cpu:.2f} CPU s); top imports:")
    for cumulative, module in top:
        print(f"    {cumulative * 1000:7.0f} ms  {module}")
    print(f"  `import postgrest_auth.cli` alone (the supervisor's needs): {cli_cpu:.2f} CPU s")
    print(flush=True)
    record(
        "cold_start",
        limit_s=LIMIT,
        runs=RUNS,
        import_s=round(wall, 3),
        import_cpu_s=round(cpu, 3),
        import_cli_cpu_s=round(cli_cpu, 3),
        top_imports=[[m, round(c, 4)] for c, m in top],
        ratio=round(worst, 3),
        **figures,
    )
    return worst
