"""create_app(settings) -> FastAPI. The lifespan owns the pool, the mail worker and the janitor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import asyncpg
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from . import __version__
from .api import gotrue, meta, original, providers
from .api.access_log import redact_access_log
from .api.body_limit import BodyLimitMiddleware
from .api.csrf import refuse_cross_origin_writes
from .api.errors import ErrorShapes, install_error_handlers
from .api.gotrue.errors import render as render_gotrue
from .config import Settings
from .mail import MailWorker, make_sender
from .migrate import migrate
from .passwords import PasswordHasher
from .services import Services
from .store import Store

log = logging.getLogger(__name__)


async def _end_open_transaction(conn: asyncpg.Connection) -> None:
    """The service leaves no session state on pooled connections (no SET, LISTEN or advisory
    lock held), so asyncpg's default reset, a round trip per release, is skipped; only a
    transaction left open by a cancelled request is rolled back."""
    if conn.is_in_transaction():
        await conn.execute("rollback")


async def _decode_json(conn: asyncpg.Connection) -> None:
    """jsonb (metadata, claims) arrives as Python objects."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def open_pool(settings: Settings) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        settings.dsn(),
        min_size=min(settings.db.pool.min, settings.pool_max()),
        max_size=settings.pool_max(),
        command_timeout=settings.db.command_timeout,
        server_settings={"application_name": "postgrest-auth"},
        reset=_end_open_transaction,
        init=_decode_json,
    )


async def _sweep(services: Services) -> None:
    """Delete sessions ended a day ago and rate-limit windows long past, every so often; and
    keep the dummy hash at the stored hashes' most common cost as logins rehash them."""
    settings = services.settings
    while True:
        await asyncio.sleep(settings.sessions.cleanup_interval)
        try:
            async with services.pool.acquire() as conn:
                removed = await services.store.delete_dead_sessions(conn, 86400)
                await services.store.delete_old_rate_limits(conn, 86400)
                await services.store.delete_old_audit_events(conn, settings.audit.retention_days)
                await services.store.delete_old_one_time_tokens(conn, 86400)
                await services.store.delete_old_flow_states(conn)
                await services.identities.delete_old_flows(conn)
                await services.factors.delete_old_challenges(conn, 86400)
            log.info("janitor: removed %s ended sessions", removed)
        except Exception as exc:
            log.warning("janitor: %s", type(exc).__name__)
        try:
            async with services.pool.acquire() as conn:
                stored_cost = await services.store.most_common_password_cost(conn)
            if await services.hasher.set_dummy_cost(stored_cost):
                log.info("janitor: dummy hash now at cost %s", services.hasher.dummy_cost)
        except Exception as exc:
            log.warning("janitor: dummy hash cost: %s", type(exc).__name__)


def create_app(settings: Settings, *, migrate_on_start: bool | None = None) -> FastAPI:
    should_migrate = settings.db.auto_migrate if migrate_on_start is None else migrate_on_start

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redact_access_log()
        pool = await open_pool(settings)
        if should_migrate:
            async with pool.acquire() as conn:
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
        worker = MailWorker(settings, pool, store, make_sender(settings.email))
        worker.start()
        janitor = asyncio.create_task(_sweep(services), name="janitor")
        try:
            yield
        finally:
            await services.afterwards.drain(seconds=10)
            janitor.cancel()
            await worker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await janitor
            await pool.close()
            hasher.close()

    app = FastAPI(
        title="postgrest-auth",
        version=__version__,
        lifespan=lifespan,
        docs_url=f"{settings.prefix}/docs",
        openapi_url=f"{settings.prefix}/openapi.json",
        redoc_url=None,
    )
    shapes = ErrorShapes()
    install_error_handlers(app, shapes)
    for router in (*original.ROUTERS, meta.router):
        app.include_router(
            router,
            prefix=settings.prefix,
            dependencies=[Depends(refuse_cross_origin_writes)],
        )
    # The redirect URI registered at every provider, served whichever APIs are on.
    app.include_router(providers.router, prefix=settings.prefix)
    if settings.gotrue.enabled:
        # No cookie is read there (bearer tokens only), so no cross-site request can borrow one.
        gotrue_prefix = settings.prefix + gotrue.PATH
        shapes.add(gotrue_prefix, render_gotrue)
        for router in gotrue.ROUTERS:
            app.include_router(router, prefix=gotrue_prefix)
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
    return app
