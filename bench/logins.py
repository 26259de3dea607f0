"""Password sign-ins (POST /auth/login) and sign-ups (POST /auth/users) versus the fastest raw
bcrypt on this machine at the same cost on every usable core (DESIGN §13): the system's libxcrypt
through ctypes and the bcrypt package are both measured in every round and the faster is the
ceiling. Target: sign-in ≥ 0.90 × the fastest raw verify rate.

Rates move with whatever else runs on the machine; the CPU a sign-in costs by part (event
loops, hashing threads, PostgreSQL, wrk) against a raw verify's barely does, so it is printed
too: it says where the rest of a sign-in goes and what ratio the cores allow."""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from statistics import mean
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import bcrypt
import httpx

from postgrest_auth.bcrypt_backends import (
    Backend,
    LibxcryptBackend,
    PackageBackend,
    default_backend,
    make_hash,
)
from postgrest_auth.passwords import usable_cores

from .load import Load, rate
from .measure import compare, report
from .results import record
from .stack import Stack

PASSWORD = "bench password"
TARGET = 0.90
# Sign-ups expected per second and more: every sign-up body is used once (a name is taken once).
SIGN_UPS_PER_SECOND = 400


def backends() -> list[Backend]:
    """Both ways of computing bcrypt this machine has (libxcrypt only when it loads)."""
    found: list[Backend] = [PackageBackend()]
    try:
        found.insert(0, LibxcryptBackend())
    except (OSError, AttributeError) as exc:
        print(f"  (libxcrypt not measured: {exc})", flush=True)
    return found


def on_every_core(operation: Callable[[], object], seconds: float) -> float:
    """Operations per second, one thread per usable core (both backends release the GIL).
    Counted as wrk counts requests: only what completes before the deadline, so the work in
    flight at the end is lost on both sides of the ratio alike."""
    cores = usable_cores()
    started = time.monotonic()
    deadline = started + seconds

    def work() -> int:
        n = 0
        while True:
            operation()
            if time.monotonic() > deadline:
                return n
            n += 1

    with ThreadPoolExecutor(cores) as pool:
        total = sum(pool.map(lambda _: work(), range(cores)))
    return total / seconds


def raw_verify(backend: Backend, stored: bytes) -> Callable[[], object]:
    """The bare verification: the backend's bcrypt and a comparison, nothing of ours around."""
    if isinstance(backend, PackageBackend):
        return lambda: bcrypt.checkpw(PASSWORD.encode(), stored)
    return lambda: backend.crypt(PASSWORD.encode(), stored) == stored


def raw_hash(backend: Backend, cost: int) -> Callable[[], object]:
    if isinstance(backend, PackageBackend):
        return lambda: bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(cost))
    return lambda: make_hash(backend, PASSWORD.encode(), cost)


class Ceiling:
    """Every backend's raw rate, measured in each round; the ceiling is the faster backend's
    mean (not the max of each round's pair, which noise would push up)."""

    def __init__(self, operations: dict[str, Callable[[], object]], seconds: float) -> None:
        self.operations = operations
        self.seconds = seconds
        self.rates: dict[str, list[float]] = {name: [] for name in operations}

    def __call__(self) -> float:
        for name, operation in self.operations.items():
            self.rates[name].append(on_every_core(operation, self.seconds))
        return max(rates[-1] for rates in self.rates.values())

    def means(self) -> dict[str, float]:
        return {name: mean(rates) for name, rates in self.rates.items()}


def measured(
    title: str,
    label: str,
    service: Callable[[], float],
    ceiling: Ceiling,
    what: tuple[str, str],
    target: str,
    rounds: int,
) -> dict[str, Any]:
    """The service against the ceiling in interleaved rounds, printed and as figures."""
    service_rate, _, measured_pairs = compare(service, ceiling, rounds)
    raw = ceiling.means()
    fastest = max(raw, key=raw.__getitem__)
    pairs = [
        (ours, raw_rate)
        for (ours, _), raw_rate in zip(measured_pairs, ceiling.rates[fastest], strict=True)
    ]
    ratio = report(
        title, label, f"raw {what[0]} ({fastest})", (service_rate, raw[fastest], pairs), target
    )
    print(f"  raw {what[1]}/s on every core: " + ", ".join(f"{k} {v:.1f}" for k, v in raw.items()))
    return {
        "service": service_rate,
        "ceiling": raw[fastest],
        "fastest": fastest,
        f"raw_{what[0]}": raw,
        "rounds": [list(pair) for pair in pairs],
        "ratio": ratio,
    }


# -- where a sign-in's CPU goes (Linux /proc): unlike rates, barely moved by other load ---------

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process we may read."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    found[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    return found


def _descendants(root: int, parents: dict[int, int]) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += [child for child, parent in parents.items() if parent == pid]
    return found


def _cpu(pid: int, tid: int | None = None, reaped: bool = False) -> float:
    """CPU seconds of a thread, or of a whole process (tid None); `reaped`: with its children
    that have exited."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    if reaped:
        ticks += int(fields[13]) + int(fields[14])  # cutime + cstime
    return ticks / TICKS


class CpuShares:
    """CPU seconds of the service's event loops, its other threads (the hashing threads),
    PostgreSQL and the load generator, from /proc; None where /proc is not there."""

    def __init__(self, stack: Stack) -> None:
        parents = _parents()
        me = os.getpid()
        services = [pid for pid, parent in parents.items() if parent == me]
        self.workers = [
            pid
            for service in services
            for pid in _descendants(service, parents)
            if pid != service
            and "spawn_main" in _cmdline(pid)
            and "resource_tracker" not in _cmdline(pid)
        ]
        data = parse_qs(urlsplit(stack.dsn).query).get("host", [""])[0]
        with open(os.path.join(data, "postmaster.pid")) as f:
            self.postmaster = int(f.readline())

    def snapshot(self) -> dict[str, float]:
        loops = others = 0.0
        for pid in self.workers:
            for tid in map(int, os.listdir(f"/proc/{pid}/task")):
                if tid == pid:
                    loops += _cpu(pid, tid)
                else:
                    others += _cpu(pid, tid)
        # PostgreSQL's backends come and go (autovacuum): the exited ones count in the
        # postmaster's children time.
        database = _cpu(self.postmaster, reaped=True) + sum(
            _cpu(pid) for pid in _descendants(self.postmaster, _parents())[1:]
        )
        parents = _parents()
        me = os.getpid()
        generator = sum(
            _cpu(pid)
            for pid, parent in parents.items()
            if parent == me and _cmdline(pid).startswith("wrk ")
        )
        return {
            "event loops": loops,
            "hashing threads": others,
            "PostgreSQL": database,
            "wrk": generator,
        }


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def raw_cpu(operation: Callable[[], object], seconds: float) -> float:
    """CPU milliseconds per operation on every core, read in the middle of a longer run (no
    start or end in the window: the work in flight is the same at both ends)."""
    counts = [0] * usable_cores()
    stop = threading.Event()

    def work(slot: int) -> None:
        while not stop.is_set():
            operation()
            counts[slot] += 1

    with ThreadPoolExecutor(len(counts)) as pool:
        for slot in range(len(counts)):
            pool.submit(work, slot)
        time.sleep(1)
        done, started = sum(counts), time.process_time()
        time.sleep(seconds)
        done, spent = sum(counts) - done, time.process_time() - started
        stop.set()
    return 1000 * spent / max(done, 1)


async def count_sessions(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("select count(*) from auth.sessions"))
    finally:
        await conn.close()


def cpu_per_sign_in(
    stack: Stack,
    login: Load,
    seconds: float,
    connections: int,
    raw: dict[str, Callable[[], object]],
) -> dict[str, dict[str, float]] | None:
    """Milliseconds of CPU per sign-in by part, and per raw verify by backend: what the cores
    allow (the cheapest raw verify / a sign-in's sum) whatever else runs on the machine.
    Sign-ins are counted by the sessions they made, in the middle of a longer load. None
    without /proc."""

    def sessions() -> int:
        return asyncio.run(count_sessions(stack.dsn))

    try:
        shares = CpuShares(stack)
        load = threading.Thread(target=rate, args=(login, seconds + 2, connections))
        load.start()
        time.sleep(1)
        first, before = sessions(), shares.snapshot()
        time.sleep(seconds)
        done, after = sessions() - first, shares.snapshot()
        load.join()
    except (OSError, ValueError):
        return None
    sign_in = {part: 1000 * (after[part] - before[part]) / max(done, 1) for part in before}
    verify = {name: raw_cpu(operation, seconds) for name, operation in raw.items()}
    return {"sign_in": sign_in, "raw_verify": verify}


def sign_ups(stack: Stack, seconds: float) -> Load:
    """Fresh names for one measurement: a name taken twice would be a failed request."""
    tag = secrets.token_hex(3)
    count = int(SIGN_UPS_PER_SECOND * max(1.0, seconds))
    bodies = [{"username": f"b{tag}{n}", "password": PASSWORD} for n in range(count)]
    return Load(stack.auth_url + "/users", method="POST", bodies=bodies)


def run(stack: Stack, seconds: float, rounds: int) -> float:
    cost = stack.bcrypt_rounds
    r = httpx.post(stack.auth_url + "/users", json={"username": "benchlogin", "password": PASSWORD})
    r.raise_for_status()
    login = Load(
        stack.auth_url + "/login",
        method="POST",
        bodies=[{"username": "benchlogin", "password": PASSWORD}],
    )
    # Enough requests in flight that every hashing thread of both workers stays fed, however
    # the kernel splits the connections between the workers.
    connections = 4 * usable_cores()
    chosen = default_backend().name
    print(
        f"bcrypt in the service: {chosen} (the same library and self-test as this process); "
        f"{usable_cores()} hashing threads per worker",
        flush=True,
    )
    available = backends()
    stored = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(cost))
    rate(login, 1, connections)  # warm up: pools filled, each worker past its first sign-in
    signed_in = measured(
        f"Password sign-in at bcrypt cost {cost}",
        "POST /auth/login (username, password)",
        lambda: rate(login, seconds, connections),
        Ceiling({b.name: raw_verify(b, stored) for b in available}, seconds),
        ("verify", "verifies"),
        f"(target ≥ {TARGET:.2f})",
        rounds,
    )
    cpu = cpu_per_sign_in(
        stack, login, seconds, connections, {b.name: raw_verify(b, stored) for b in available}
    )
    if cpu is not None:
        cheapest = min(cpu["raw_verify"].values())
        bound = cheapest / sum(cpu["sign_in"].values())
        print(
            "  CPU ms per sign-in: "
            + ", ".join(f"{k} {v:.1f}" for k, v in cpu["sign_in"].items())
            + "; per raw verify: "
            + ", ".join(f"{k} {v:.1f}" for k, v in cpu["raw_verify"].items())
        )
        print(f"  the cores allow at most {bound:.2f} of the raw rate (cheapest verify / sign-in)")
        signed_in["cpu_ms"] = cpu
        signed_in["cpu_bound_ratio"] = bound
    signed_up = measured(
        f"Sign-up at bcrypt cost {cost}",
        "POST /auth/users (username, password)",
        lambda: rate(sign_ups(stack, seconds), seconds, connections),
        Ceiling({b.name: raw_hash(b, cost) for b in available}, seconds),
        ("hash", "hashes"),
        "(no target: a sign-up also writes the account)",
        rounds,
    )
    record(
        "signin",
        bcrypt_rounds=cost,
        backend=chosen,
        hashing_threads=usable_cores(),
        connections=connections,
        target=TARGET,
        **signed_in,
        signup=signed_up,
    )
    return float(signed_in["ratio"])
