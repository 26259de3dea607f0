"""The service's Prometheus metrics and `GET /metrics`.

Counters and histograms are written by every worker (in multiprocess mode, to files in
PROMETHEUS_MULTIPROC_DIR) and summed at scrape time. Gauges of this process (pool, bcrypt
queue) are sampled every second and summed over the live workers. Outbox figures are read
from the database at scrape time: one worker reads them for all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:  # the operations import this module, and Services imports them
    from ..services import Services

log = logging.getLogger(__name__)

PREFIX = "postgrest_auth"
MULTIPROCESS = bool(getattr(values.ValueClass, "_multiprocess", False))
# Refreshes take about a millisecond, sign-ins a bcrypt (tens of ms): finer at the low end.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A client picks the method: anything else is one label value, not a new series per request.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SAMPLE_SECONDS = 1.0
OUTBOX_READ_SECONDS = 2.0

REQUESTS = Counter(
    f"{PREFIX}_http_requests",
    "Requests answered, by route template (never the raw path) and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time from the request's arrival to the end of its answer.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
SIGN_INS = Counter(
    f"{PREFIX}_sign_ins",
    "Sign-ins by method (password, otp, magiclink, pkce, oauth…) and result (ok, failed).",
    ["method", "result"],
)
REFRESH_REUSE = Counter(
    f"{PREFIX}_refresh_token_reuse_detections",
    "Rotated refresh tokens presented after the reuse interval: each ended a session.",
)
RATE_LIMITED = Counter(
    f"{PREFIX}_rate_limit_refusals",
    "Requests refused by a rate limit, by what was counted (address, account, mail, verify,"
    " factor) and the action.",
    ["scope", "action"],
)
POOL_IN_USE = Gauge(
    f"{PREFIX}_db_pool_connections_in_use",
    "Database connections lent out of the pools (all workers).",
    multiprocess_mode="livesum",
)
POOL_OPEN = Gauge(
    f"{PREFIX}_db_pool_connections",
    "Database connections open in the pools (all workers).",
    multiprocess_mode="livesum",
)
POOL_MAX = Gauge(
    f"{PREFIX}_db_pool_max_connections",
    "The pools' upper bound (all workers).",
    multiprocess_mode="livesum",
)
BCRYPT_QUEUE = Gauge(
    f"{PREFIX}_bcrypt_queue_depth",
    "Password hashes waiting for a hashing thread (all workers).",
    multiprocess_mode="livesum",
)

# Audit events that are sign-ins: (event, detail) -> (method, result), or None to skip.
_FAILED_OTP_METHOD = {"code": "otp", "link": "magiclink"}


def count_event(event: str, detail: Mapping[str, Any]) -> None:
    """Called where the audit trail records an event: the one place sign-ins are known."""
    if event == "signed_in":
        SIGN_INS.labels(str(detail.get("method", "password")), "ok").inc()
    elif event == "sign_in_failed":
        if detail.get("action") == "login":  # not a password re-checked before a change
            SIGN_INS.labels("password", "failed").inc()
    elif event == "otp_failed":
        SIGN_INS.labels(_FAILED_OTP_METHOD.get(str(detail.get("via")), "otp"), "failed").inc()
    elif event == "provider_sign_in_failed":
        SIGN_INS.labels("oauth", "failed").inc()
    elif event == "refresh_token_reused":
        REFRESH_REUSE.inc()


def count_refusal(scope: str, action: str) -> None:
    RATE_LIMITED.labels(scope, action).inc()


class RequestMetrics:
    """What the middleware records per request; label children are looked up once."""

    def __init__(self) -> None:
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "other"
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = REQUESTS.labels(method, route, str(status))
            self._counters[(method, route, status)] = counter
        histogram = self._histograms.get((method, route))
        if histogram is None:
            histogram = LATENCY.labels(method, route)
            self._histograms[(method, route)] = histogram
        counter.inc()
        histogram.observe(seconds)


def sample(services: Services) -> None:
    """This process's gauges, as they are now."""
    pool = services.pool
    size = pool.get_size()
    POOL_OPEN.set(size)
    POOL_IN_USE.set(size - pool.get_idle_size())
    POOL_MAX.set(pool.get_max_size())
    BCRYPT_QUEUE.set(services.hasher.queue_depth)


async def sample_forever(services: Services) -> None:
    while True:
        try:
            sample(services)
        except Exception as exc:  # a gauge must never take the worker down
            log.warning("metrics sampling: %s", type(exc).__name__)
        await asyncio.sleep(SAMPLE_SECONDS)


class OutboxFigures(Collector):
    """Figures read from the database just before the scrape; none when it did not answer."""

    def __init__(self, row: Mapping[str, Any] | None) -> None:
        self.row = row

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            f"{PREFIX}_database_up",
            "1 when the database answered the scrape's outbox query within 2 s.",
            value=0 if self.row is None else 1,
        )
        if self.row is None:
            return
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_pending", "Mail waiting to be sent.", value=self.row["pending"]
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_failed", "Mail given up on.", value=self.row["failed"]
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_pending_seconds",
            "Age of the oldest mail waiting (0 when none waits).",
            value=self.row["oldest_pending_seconds"] or 0.0,
        )


def _outbox_query(services: Services) -> str:
    """Pending rows through the partial index the mail worker uses; failed rows are few."""
    table = services.store.outbox_table
    return (
        "select p.pending, p.oldest_pending_seconds,"
        f" (select count(*) from {table} where failed_at is not null) as failed"
        " from (select count(*) as pending,"
        " extract(epoch from now() - min(created_at))::float8 as oldest_pending_seconds"
        f" from {table} where sent_at is null and failed_at is null) p"
    )


async def read_outbox(services: Services) -> Mapping[str, Any] | None:
    """Tolerant of a database that is away: the scrape still answers, with database_up 0."""
    try:
        async with asyncio.timeout(OUTBOX_READ_SECONDS):
            async with services.pool.acquire() as conn:
                return await conn.fetchrow(_outbox_query(services))
    except Exception as exc:  # down, restarting, pool exhausted: say so, do not fail
        log.info("metrics: outbox not read (%s)", type(exc).__name__)
        return None


def _registry() -> CollectorRegistry:
    if not MULTIPROCESS:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text format: every worker's counters, this instance's outbox figures."""
    services: Services = request.app.state.services
    outbox = CollectorRegistry()
    outbox.register(OutboxFigures(await read_outbox(services)))
    body = generate_latest(_registry()) + generate_latest(outbox)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
