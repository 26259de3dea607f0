"""Reaching the database at start-up: a container orchestrator starts the service and
PostgreSQL together, so a refused connection is retried (0.5 s doubling to 5 s) for
`db.connect_timeout`, then refused in one line that names the host and the fix."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import asyncpg
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY = 0.5
MAX_DELAY = 5.0
MAX_ATTEMPT = 10.0  # seconds one attempt may take (a host that drops packets)

# Worth waiting for: nothing listens yet, PostgreSQL is starting or full, a slow network.
TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)
# PgBouncer's words for a PostgreSQL behind it that is not up (yet), or a PgBouncer stopping.
PGBOUNCER_WAITING = ("cannot connect to server", "try again later", "shutting down")


class DatabaseUnreachable(Exception):
    """Start-up gives up; the message is the one line shown to the operator."""


def database_address(dsn: str) -> str:
    """host:port of a connection string, without user or password (for messages)."""
    try:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        location = parts.netloc.rpartition("@")[2]
        if "," in location:  # several hosts: name them as written
            return location
        host = parts.hostname or query.get("host", [""])[0] or os.environ.get("PGHOST", "")
        port = parts.port or query.get("port", [""])[0] or os.environ.get("PGPORT", "") or 5432
    except ValueError:
        return "(unparsable connection string)"
    if host.startswith("/"):
        return f"the socket in {host} (port {port})"
    return f"{host or 'localhost'}:{port}"


def _said(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def reach(
    connect: Callable[[float], Awaitable[T]], settings: Settings, dsn: str, setting: str
) -> T:
    """`connect(seconds)` until it succeeds or `db.connect_timeout` has passed; `connect` must
    give up after `seconds` itself. `setting` names where the connection string came
    from (db.connection_string, say)."""
    loop = asyncio.get_running_loop()
    budget = settings.db.connect_timeout
    deadline = loop.time() + budget
    delay = FIRST_DELAY
    where = database_address(dsn)
    while True:
        remaining = deadline - loop.time()
        try:
            return await connect(min(MAX_ATTEMPT, max(remaining, 0.5)))
        except asyncpg.InvalidAuthorizationSpecificationError as exc:
            raise DatabaseUnreachable(
                f"{setting}: PostgreSQL at {where} refused the login ({_said(exc)}); check the"
                f" user and password in {setting}"
            ) from None
        except asyncpg.InvalidCatalogNameError as exc:
            raise DatabaseUnreachable(
                f"{setting}: PostgreSQL at {where} has no such database ({_said(exc)}); create it"
                f" or name another in {setting}"
            ) from None
        except TRANSIENT as exc:
            failure: BaseException = exc
        except asyncpg.PostgresError as exc:
            # PgBouncer answers in its own words, mostly as 08P01 (ProtocolViolationError): "no
            # such database: x" for a database it does not list, PostgreSQL's words otherwise.
            said = str(exc).lower()
            if "no such database" in said or ("database" in said and "does not exist" in said):
                raise DatabaseUnreachable(
                    f"{setting}: PostgreSQL at {where} has no such database ({_said(exc)});"
                    f" create it or name another in {setting}"
                ) from None
            if not any(words in said for words in PGBOUNCER_WAITING):
                raise DatabaseUnreachable(
                    f"{setting}: PostgreSQL at {where} refused the connection ({_said(exc)});"
                    f" check the database, user and password in {setting}"
                ) from None
            failure = exc
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise DatabaseUnreachable(
                f"{setting}: cannot reach PostgreSQL at {where} after {budget:g} s"
                f" ({_said(failure)}); start it or fix the host and port in {setting}"
                " (db.connect_timeout sets how long start-up waits)"
            ) from None
        log.debug("database at %s not reachable yet (%s)", where, type(failure).__name__)
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_DELAY)


def connection_setting(settings: Settings) -> str:
    """Where settings.dsn() comes from, for messages."""
    return "db.connection_string" if settings.db.connection_string else "db.connection"


async def open_pool_when_up(settings: Settings) -> asyncpg.Pool:
    """The service's pool, waited for as above (each worker opens its own)."""
    from .database import open_pool

    async def attempt(seconds: float) -> asyncpg.Pool:
        return await asyncio.wait_for(open_pool(settings), seconds)

    return await reach(attempt, settings, settings.dsn(), connection_setting(settings))


class OneLineStartupRefusal:
    """ASGI middleware: uvicorn logs a failed lifespan with the traceback Starlette sends; a
    database that never answered is the operator's matter, so it is reported as its one line.
    Any other start-up failure keeps its traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold_failure(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                held.append(message)  # sent once the cause is known
                return
            await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except DatabaseUnreachable as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        except BaseException:
            for message in held:
                await send(message)
            raise
        for message in held:
            await send(message)
