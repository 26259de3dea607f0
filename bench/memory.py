"""Resident memory of each service worker after 100k requests, and again after a second 100k: a
worker must stay small (≤ 80 MB) and must not grow once warm (a leak check, issue 13).

The workers are found in /proc (no psutil): the service process is the one started with the
stack's configuration file, whose port is the stack's; its workers are its multiprocessing
children. The mix is mostly what wrk can drive (bearer refreshes, GET /user in both APIs, the
session list), plus a small loop of what it cannot: sign-ins, sign-outs, sign-ups and refused
requests (401, 400, 404), which take other code paths (errors, bcrypt threads, rows written)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .load import Load, distribution
from .results import record
from .stack import Stack

REQUESTS = 100_000  # per phase
TARGET_MB = 80.0
# "Not growing": at most this much more per worker over the second 100k. 2 MB over 100k requests
# is 20 bytes a request: a leak of even one small object per request (a dict, a str of a token:
# 50 bytes and more) would show several times over, while the allocator's arenas and caches
# settling after warm-up stay well within it.
GROWTH_LIMIT_MB = 2.0
ACCOUNTS = 32
CONNECTIONS = 32
PASSWORD = "bench password"


def _cmdline(pid: str | int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone meanwhile, or not ours to read
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def parent_pid(pid: str | int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    return int(stat.rsplit(")", 1)[1].split()[1])


def all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def service_pid(auth_url: str) -> int:
    """The `python -m postgrest_auth --config FILE` process whose FILE has the URL's port:
    other stacks (other benchmarks, tests) may run beside this one."""
    port = urlsplit(auth_url).port
    for pid in all_pids():
        args = _cmdline(pid)
        if "postgrest_auth" not in args or "--config" not in args:
            continue
        config = Path(args[args.index("--config") + 1])
        try:
            if json.loads(config.read_text()).get("port") == port:
                return pid
        except (OSError, ValueError, IndexError):
            continue
    raise RuntimeError(f"no postgrest_auth process serves port {port}")


def worker_pids(service: int) -> list[int]:
    """The processes that serve requests: the supervisor's spawned children, or the service
    itself when it runs one worker in-process."""
    children = [
        pid
        for pid in all_pids()
        if parent_pid(pid) == service and any("spawn_main" in a for a in _cmdline(pid))
    ]
    return sorted(children) or [service]


def rss_mb(pid: int) -> float:
    """VmRSS: what the kernel says the process holds in memory now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def private_mb(pid: int) -> tuple[float, float]:
    """(RssAnon, Pss): memory of this process alone, and its share of pages it shares with the
    other workers (libraries): what one more worker costs, beside VmRSS that counts them all."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    anon = next(int(x.split()[1]) for x in status if x.startswith("RssAnon:"))
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    pss = next(int(x.split()[1]) for x in rollup if x.startswith("Pss:"))
    return anon / 1024, pss / 1024


def served(auth_url: str) -> int:
    """Requests the service has answered, all workers (the metrics' request counter)."""
    parts = urlsplit(auth_url)
    text = httpx.get(f"{parts.scheme}://{parts.netloc}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("postgrest_auth_http_requests_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


@dataclass
class Account:
    username: str
    access_token: str


def sign_up(auth_url: str, prefix: str, count: int) -> list[Account]:
    accounts = []
    with httpx.Client(timeout=30) as client:
        for n in range(count):
            username = f"{prefix}{n}"
            r = client.post(auth_url + "/users", json={"username": username, "password": PASSWORD})
            r.raise_for_status()
            accounts.append(Account(username, r.json()["access_token"]))
    return accounts


def _expect(answer: httpx.Response, status: int) -> None:
    if answer.status_code != status:
        raise RuntimeError(f"{answer.request.url.path}: {answer.status_code}, not {status}")


def side_loop(auth_url: str, accounts: list[Account], round_: int) -> None:
    """What wrk cannot drive (it counts any refusal as a failure): a few sign-ins each followed
    by a sign-out, a sign-up, and refused requests of several kinds."""
    with httpx.Client(timeout=30) as client:
        for n in range(30):
            account = accounts[(round_ * 30 + n) % len(accounts)]
            body = {"username": account.username, "password": PASSWORD}
            signed_in = client.post(auth_url + "/login", json=body)
            _expect(signed_in, 200)
            bearer = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
            _expect(client.post(auth_url + "/logout", headers=bearer, json={}), 200)
        body = {"username": f"memnew{secrets.token_hex(6)}", "password": PASSWORD}
        _expect(client.post(auth_url + "/users", json=body), 201)
        token = accounts[0].access_token
        wrong = {"Authorization": f"Bearer {token[:-4]}AAAA"}
        for n in range(100):
            _expect(client.post(auth_url + "/refresh_token", headers=wrong), 401)
            _expect(client.get(auth_url + "/user", headers=wrong), 401)
            bad = {"Content-Type": "application/json"}
            _expect(client.post(auth_url + "/refresh_token", headers=bad, content=b"{"), 400)
            wrong_password = {"username": accounts[1].username, "password": "not it"}
            if n % 20 == 0:  # each a bcrypt verify: a few
                _expect(client.post(auth_url + "/login", json=wrong_password), 401)
            _expect(client.get(auth_url + "/no-such-route"), 404)


def drive(
    stack: Stack,
    accounts: list[Account],
    count: int,
    seconds: float,
    trace: list[tuple[int, list[float]]],
    workers: list[int],
) -> int:
    """Requests of the mix until the service has answered `count` more; returns how many.
    After each round of the mix, `trace` gets (requests answered so far, each worker's RSS)."""
    url = stack.auth_url
    cycle = [{"Authorization": f"Bearer {a.access_token}"} for a in accounts]
    loads = [
        (Load(url + "/refresh_token", method="POST", header_cycle=cycle), 3.0),
        (Load(url + "/user", header_cycle=cycle), 1.0),
        (Load(url + "/v1/user", header_cycle=cycle), 0.5),
        (Load(url + "/sessions", header_cycle=cycle), 0.5),
    ]
    start = served(url)
    round_ = 0
    while served(url) - start < count:
        for load, share in loads:
            distribution(load, max(1.0, seconds * share), CONNECTIONS)
        side_loop(url, accounts, round_)
        round_ += 1
        trace.append((served(url), [rss_mb(pid) for pid in workers]))
    return served(url) - start


def run(stack: Stack, seconds: float, rounds: int) -> float:
    """Prints each worker's RSS after each 100k and the growth; returns the worse of the two
    ratios to their limits (RSS / 80 MB, growth / 2 MB): ≤ 1.00 meets both."""
    seconds = max(seconds, 2.0)
    service = service_pid(stack.auth_url)
    workers = worker_pids(service)
    accounts = sign_up(stack.auth_url, f"mem{secrets.token_hex(4)}", ACCOUNTS)
    at_start = {pid: rss_mb(pid) for pid in workers}
    started = time.monotonic()
    trace: list[tuple[int, list[float]]] = []
    first = drive(stack, accounts, REQUESTS, seconds, trace, workers)
    after_first = {pid: rss_mb(pid) for pid in workers}
    second = drive(stack, accounts, REQUESTS, seconds, trace, workers)
    after_second = {pid: rss_mb(pid) for pid in workers}
    elapsed = time.monotonic() - started
    if worker_pids(service) != workers:
        raise RuntimeError("a worker was replaced during the run: its memory was not followed")

    worst = max(after_second.values())
    growth = {pid: after_second[pid] - after_first[pid] for pid in workers}
    ratio_rss = max(max(after_first.values()), worst) / TARGET_MB
    ratio_growth = max(growth.values()) / GROWTH_LIMIT_MB
    print(f"Worker memory (VmRSS), {len(workers)} workers, {first:,} + {second:,} requests")
    print(f"  in {elapsed:.0f} s; supervisor {rss_mb(service):.1f} MB")
    private = {pid: private_mb(pid) for pid in workers}
    k = REQUESTS // 1000
    for pid in workers:
        print(
            f"  worker {pid}: {at_start[pid]:.1f} MB at start, {after_first[pid]:.1f} after"
            f" {k}k, {after_second[pid]:.1f} after {2 * k}k ({growth[pid]:+.2f} MB over the"
            " second);"
            f" its own {private[pid][0]:.1f} MB (RssAnon), Pss {private[pid][1]:.1f} MB"
        )
    steps = ", ".join(f"{n // 1000}k: " + "/".join(f"{r:.1f}" for r in rss) for n, rss in trace)
    print(f"  along the way (MB): {steps}")
    print(f"  ratio {ratio_rss:.2f}   (limit 1.00: {TARGET_MB:.0f} MB a worker)")
    print(
        f"  growth ratio {ratio_growth:.2f}   (limit 1.00: {GROWTH_LIMIT_MB:.0f} MB a worker"
        f" over the second {k}k, {GROWTH_LIMIT_MB * 2**20 / REQUESTS:.0f} bytes a request)",
        flush=True,
    )
    record(
        "memory",
        workers=len(workers),
        requests=[first, second],
        rss_mb_start=[round(at_start[p], 1) for p in workers],
        rss_mb_after_first=[round(after_first[p], 1) for p in workers],
        rss_mb_after_second=[round(after_second[p], 1) for p in workers],
        growth_mb=[round(growth[p], 2) for p in workers],
        rss_anon_mb=[round(private[p][0], 1) for p in workers],
        pss_mb=[round(private[p][1], 1) for p in workers],
        trace=[[n, [round(r, 2) for r in rss]] for n, rss in trace],
        target_mb=TARGET_MB,
        growth_limit_mb=GROWTH_LIMIT_MB,
        ratio=round(ratio_rss, 3),
        growth_ratio=round(ratio_growth, 3),
    )
    return max(ratio_rss, ratio_growth)
