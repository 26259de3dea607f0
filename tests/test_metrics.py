"""GET /metrics: every worker counts (prometheus-client multiprocess mode), outside the prefix,
with route templates for labels, and answers while the database is gone."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from .observability_support import Served
from .support import SECRET, Service, make_settings, run_sql, wait_until

SETTINGS_ROUTE = "/auth/v1/settings"


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of GET /metrics, by (name, labels)."""
    r = httpx.get(url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def workers_of(pid: int) -> list[int]:
    """The worker processes of the serving process `pid`."""
    out = subprocess.run(
        ["ps", "--ppid", str(pid), "-o", "pid=,args="], capture_output=True, text=True, check=True
    )
    return [
        int(line.split()[0]) for line in out.stdout.splitlines() if "multiprocessing.spawn" in line
    ]


def settings_requests_by_worker(directory: Path) -> dict[str, float]:
    """How many GET /auth/v1/settings each process counted, read from its own file."""
    counted: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        alone = directory.parent / f"one-{path.stem}"
        alone.mkdir(exist_ok=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        for family in registry.collect():
            for sample in family.samples:
                if (
                    sample.name == "postgrest_auth_http_requests_total"
                    and sample.labels.get("route") == SETTINGS_ROUTE
                ):
                    counted[path.stem] = counted.get(path.stem, 0.0) + sample.value
        shutil.rmtree(alone)
    return counted


@pytest.fixture
def served(tmp_path: Path, dsn: str) -> Iterator[Served]:
    service = Served(
        tmp_path,
        {
            "secret": SECRET,
            "workers": 2,
            "log_level": "warning",
            "db": {"connection_string": dsn, "pool": {"min": 1, "max": 3}},
            # Nothing listens there: mail stays pending, for the outbox figures.
            "email": {"backend": "smtp", "host": "127.0.0.1", "port": 1, "timeout": 1},
            "passwords": {"bcrypt_rounds": 4},
            "sessions": {"reuse_interval": 0},
            "rate_limit": {
                "per_address": {"requests": 5, "window": 600},
                "per_account": {"requests": 1000, "window": 600},
            },
        },
    )
    try:
        service.wait_up()
        yield service
    finally:
        service.stop()


def test_metrics_count_across_workers(served: Served, dsn: str, admin_dsn: str) -> None:
    url = served.url
    directory = served.metrics_directory()

    # Requests from many connections at once, until both workers have answered some.
    def get_settings(_: int) -> int:
        return httpx.get(url + SETTINGS_ROUTE, timeout=10).status_code

    sent = 0
    with ThreadPoolExecutor(8) as pool:
        for _ in range(20):
            statuses = list(pool.map(get_settings, range(20)))
            assert statuses == [200] * 20
            sent += 20
            if len([n for n in settings_requests_by_worker(directory).values() if n]) >= 2:
                break
    by_worker = settings_requests_by_worker(directory)
    assert len([n for n in by_worker.values() if n]) == 2, by_worker
    assert sum(by_worker.values()) == sent

    with httpx.Client(base_url=url + "/auth/v1", timeout=10) as http:
        email, password = "metrics@example.test", "pw metrics 1"
        r = http.post("/signup", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        r = http.post("/token?grant_type=password", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        first = r.json()["refresh_token"]
        r = http.post("/token?grant_type=refresh_token", json={"refresh_token": first})
        assert r.status_code == 200, r.text
        # The rotated token again, past a reuse interval of 0: the session ends, once counted.
        r = http.post("/token?grant_type=refresh_token", json={"refresh_token": first})
        assert r.status_code == 400 and r.json()["code"] == "refresh_token_already_used", r.text
        # Four wrong passwords fit the address's budget of 5 (the good sign-in took one) ...
        wrong = {"email": email, "password": "not the password"}
        for _ in range(4):
            r = http.post("/token?grant_type=password", json=wrong)
            assert r.status_code == 400, r.text
        # ... and three more are refused before the password is checked.
        for _ in range(3):
            r = http.post("/token?grant_type=password", json=wrong)
            assert r.status_code == 429, r.text
        # A reset mail that cannot be delivered (SMTP is down): pending in the outbox.
        r = http.post("/recover", json={"email": email})
        assert r.status_code == 200, r.text
        some_id = str(uuid.uuid4())
        r = http.get(f"/admin/users/{some_id}?secret=query-string-value")
        assert r.status_code in (401, 403), r.text

    def sampled() -> dict | None:
        samples = scrape(url)
        # livesum over the live workers: each worker's sampler has run (every second).
        pools = value(samples, "postgrest_auth_db_pool_max_connections") == 2 * 3
        waiting = value(samples, "postgrest_auth_outbox_oldest_pending_seconds") > 0
        return samples if pools and waiting else None

    # The reset mail is queued after its answer (the same time for every address): both
    # mails in the outbox before the scrape is compared with it.
    wait_until(lambda: run_sql(dsn, "select count(*) from auth.outbox")[0][0] == 2)
    samples = wait_until(sampled, timeout=15, interval=0.5)
    requests = "postgrest_auth_http_requests_total"
    assert value(samples, requests, method="GET", route=SETTINGS_ROUTE, status="200") == sent
    token = "/auth/v1/token"
    assert value(samples, requests, method="POST", route=token, status="200") == 2
    assert value(samples, requests, method="POST", route=token, status="400") == 5
    assert value(samples, requests, method="POST", route=token, status="429") == 3
    assert (
        value(
            samples,
            "postgrest_auth_http_request_duration_seconds_count",
            method="POST",
            route=token,
        )
        == 10
    )
    signins = "postgrest_auth_sign_ins_total"
    assert value(samples, signins, method="password", result="ok") == 1
    assert value(samples, signins, method="password", result="failed") == 4
    assert value(samples, "postgrest_auth_refresh_token_reuse_detections_total") == 1
    refusals = "postgrest_auth_rate_limit_refusals_total"
    assert value(samples, refusals, scope="address", action="login") == 3
    assert value(samples, "postgrest_auth_database_up") == 1
    [row] = run_sql(dsn, "select count(*) from auth.outbox where sent_at is null")
    assert value(samples, "postgrest_auth_outbox_pending") == row[0] >= 1  # welcome and reset
    assert value(samples, "postgrest_auth_outbox_failed") == 0
    assert ("postgrest_auth_bcrypt_queue_depth", frozenset()) in samples
    in_use = value(samples, "postgrest_auth_db_pool_connections_in_use")
    assert 0 <= in_use <= value(samples, "postgrest_auth_db_pool_connections") <= 6
    # Labels name routes as written: no id, no query string, no raw path.
    text = httpx.get(url + "/metrics").text
    route = 'route="/auth/v1/admin/users/{user_id}"'
    assert route in text
    assert some_id not in text and "query-string-value" not in text and "secret=" not in text

    # Not under the prefix (the example proxy publishes only the prefix), not in the API's docs.
    assert httpx.get(url + "/auth/metrics").status_code == 404
    assert "/metrics" not in httpx.get(url + "/auth/openapi.json").json()["paths"]

    # A worker killed outright (OOM, SIGKILL) never ends its lifespan: the supervisor drops its
    # gauges when it replaces it, so the sums count the live workers only.
    pool_max = "postgrest_auth_db_pool_max_connections"
    victim = workers_of(served.process.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in workers_of(served.process.pid), timeout=20)
    wait_until(lambda: len(workers_of(served.process.pid)) == 2, timeout=20)
    wait_until(lambda: httpx.get(url + "/auth/health", timeout=5).status_code == 200)
    time.sleep(2.5)  # the replacement's sampler has run (every second)
    assert value(scrape(url), pool_max) == 2 * 3

    # The database gone: the scrape still answers, says so, and keeps the counters.
    database = urlsplit(dsn).path.lstrip("/")
    run_sql(admin_dsn, f'drop database "{database}" with (force)')
    samples = scrape(url)
    assert value(samples, "postgrest_auth_database_up") == 0
    assert ("postgrest_auth_outbox_pending", frozenset()) not in samples
    assert value(samples, requests, method="GET", route=SETTINGS_ROUTE, status="200") == sent

    # The directory belongs to this run: removed when the service exits.
    served.stop()
    assert served.process.returncode == 0, served.output()
    assert not directory.exists()


def test_metrics_off(dsn: str) -> None:
    """metrics.enabled false: no /metrics route; requests still get an id."""
    service = Service(make_settings(dsn, metrics={"enabled": False})).start()
    try:
        r = httpx.get(service.url + "/metrics")
        assert r.status_code == 404
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"]), r.headers
    finally:
        service.stop()
