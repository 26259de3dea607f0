"""create_app(settings) -> FastAPI. The lifespan owns the pool, the mail worker and the janitor."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from functools import partial

import asyncpg
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from . import __version__
from .api import gotrue, meta, original, providers
from .api.access_log import redact_access_log
from .api.body_limit import BodyLimitMiddleware
from .api.csrf import refuse_cross_origin_writes
from .api.errors import ErrorShapes, install_error_handlers
from .api.fast_lane import FastLane, fast_routes
from .api.gotrue.errors import RESPONSES as GOTRUE_ERRORS
from .api.gotrue.errors import render as render_gotrue
from .api.original.errors import RESPONSES as ORIGINAL_ERRORS
from .config import Settings
from .draining import Drain, worker_budget
from .janitor import sweep
from .mail import MailWorker, make_sender
from .mail.relink import renew
from .migrate import migrate, migration_connection
from .observability.metrics import metrics_endpoint
from .observability.middleware import ObservabilityMiddleware
from .passwords import PasswordHasher
from .reach import OneLineStartupRefusal, open_pool_when_up
from .services import Services
from .store import Store

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, migrate_on_start: bool | None = None) -> FastAPI:
    should_migrate = settings.db.auto_migrate if migrate_on_start is None else migrate_on_start
    drain = Drain()  # begun by SIGTERM/SIGINT: /ready answers 503, the stop has a deadline

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redact_access_log()
        pool = await open_pool_when_up(settings)  # DatabaseUnreachable: one line, no serving
        if should_migrate:
            async with migration_connection(settings, pool) as conn:
                await migrate(conn, settings)
        store = Store(settings)
        hasher = PasswordHasher(settings.passwords)
        # Unknown accounts cost what the stored hashes cost, not what new ones will (timing).
        try:
            async with pool.acquire() as conn:
                stored_cost = await store.most_common_password_cost(conn)
            await hasher.set_dummy_cost(stored_cost)
        except Exception as exc:  # the configured cost until the janitor's next try
            log.warning("dummy hash cost: %s", type(exc).__name__)
        services = Services.build(settings, pool, hasher)
        app.state.services = services
        sender = make_sender(settings.email)
        worker = MailWorker(settings, pool, store, sender, renew=partial(renew, services))
        worker.start()
        janitor = asyncio.create_task(sweep(services), name="janitor")
        drain.follow_signals()
        # What exists now (modules, the app, the pool) lives as long as the process: out of
        # the collector's sight, a full collection scans only what requests made (~50 ms less,
        # paid by whichever requests are in flight when it runs).
        gc.freeze()
        try:
            yield
        finally:
            # Accepted requests are answered (uvicorn waited for them); what is left of
            # shutdown_timeout goes to the work after answers, the mail being sent, the pool.
            budget = worker_budget(settings.shutdown_timeout)
            janitor.cancel()
            await services.afterwards.drain(seconds=drain.seconds_left(budget))
            await worker.stop(within=drain.seconds_left(budget))
            with contextlib.suppress(asyncio.CancelledError):
                await janitor
            await _close_pool(pool, drain.seconds_left(budget))
            hasher.close()

    app = FastAPI(
        title="postgrest-auth",
        version=__version__,
        lifespan=lifespan,
        docs_url=f"{settings.prefix}/docs",
        openapi_url=f"{settings.prefix}/openapi.json",
        redoc_url=None,
        # FastAPI's OpenTelemetry hooks look up the providers on every request; the service
        # counts at GET /metrics instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.drain = drain
    app.add_middleware(OneLineStartupRefusal)  # innermost: sees the lifespan's own exception
    shapes = ErrorShapes()
    install_error_handlers(app, shapes)
    for router in (*original.ROUTERS, meta.router):
        app.include_router(
            router,
            prefix=settings.prefix,
            dependencies=[Depends(refuse_cross_origin_writes)],
            responses=ORIGINAL_ERRORS,
        )
    # The redirect URI registered at every provider, served whichever APIs are on.
    callback_errors = GOTRUE_ERRORS if settings.gotrue.enabled else ORIGINAL_ERRORS
    app.include_router(providers.router, prefix=settings.prefix, responses=callback_errors)
    if settings.gotrue.enabled:
        # No cookie is read there (bearer tokens only), so no cross-site request can borrow one.
        gotrue_prefix = settings.prefix + gotrue.PATH
        shapes.add(gotrue_prefix, render_gotrue)
        for router in gotrue.ROUTERS:
            app.include_router(router, prefix=gotrue_prefix, responses=GOTRUE_ERRORS)
    if settings.http.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.http.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            # what the Supabase clients send besides the usual two
            allow_headers=[
                "Authorization",
                "Content-Type",
                "apikey",
                "x-client-info",
                "x-supabase-api-version",
            ],
            expose_headers=["X-Supabase-Api-Version", "X-Total-Count", "Link"],
            max_age=600,
        )
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.http.max_body_bytes, render=shapes.render
    )
    if settings.metrics.enabled:  # outside the prefix: the example proxy does not publish it
        app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    # Outermost, around Starlette's own error middleware too: every answer (a refused body, a
    # CORS preflight, a 500) gets an id, a line and a count, and a crash's traceback its id.
    # Inside it, the fast lane: the hottest requests skip the rest of the stack (api/fast_lane).
    build_stack = app.build_middleware_stack
    routes = fast_routes(settings.prefix)
    cors = bool(settings.http.cors_origins)
    app.build_middleware_stack = lambda: ObservabilityMiddleware(  # type: ignore[method-assign]
        FastLane(app, build_stack(), routes, cors), settings
    )
    return app


async def _close_pool(pool: asyncpg.Pool, within: float) -> None:
    """Close the pool gracefully if its connections come back in time, else cut them."""
    try:
        await asyncio.wait_for(pool.close(), within)
    except TimeoutError:
        pool.terminate()
