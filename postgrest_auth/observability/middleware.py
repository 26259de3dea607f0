"""One pure ASGI middleware around every request: its id, its metrics, its log line.

Pure ASGI (not BaseHTTPMiddleware): no extra task or stream per request, since it runs on
every refresh. Nothing of the request but its method, route template, status, duration,
client address and user id is written: never the path with its query, headers or bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..api.client import client_address, plain_address
from ..config import Settings
from .context import CURRENT, RequestContext
from .request_id import RequestIds

access_log = logging.getLogger("postgrest_auth.access")
log = logging.getLogger(__name__)


def route_template(scope: Scope) -> str | None:
    """The matched route as written, prefix included (`/auth/v1/admin/users/{user_id}`), or
    None when no route matched: never a raw path, which may carry an id or a secret.

    FastAPI puts the route as its router declares it in the scope (`/admin/users/{user_id}`),
    without the prefix it was included under; the prefix is what precedes the matched part.
    """
    template = getattr(scope.get("route"), "path_format", None)
    if template is None:
        return None
    try:
        concrete = template.format(**scope.get("path_params", {}))
    except (KeyError, IndexError, ValueError):
        return template
    path: str = scope["path"]
    return path[: len(path) - len(concrete)] + template if path.endswith(concrete) else template


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.http = settings.http
        self.ids = RequestIds(settings.http)
        self.metrics: Any = None
        if settings.metrics.enabled:
            from .metrics import RequestMetrics

            self.metrics = RequestMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self.metrics is not None:
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        client = scope.get("client")
        request_id = self.ids.choose(client[0] if client else None, scope["headers"])
        context = RequestContext(request_id)
        token = CURRENT.set(context)
        id_header = (b"x-request-id", request_id.encode())
        status = 500  # what the server answers when the app raised before answering
        answered: float | None = None  # background tasks run after the answer, before return

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered = time.perf_counter()

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Starlette answered 500 in the API's shape and re-raised: log the traceback here,
            # with this request's id, instead of letting the server log it without one.
            log.error("unexpected error", exc_info=True)
            if status != 500 or answered is None:
                raise  # no complete answer went out: the server must close the connection
        finally:
            seconds = (answered or time.perf_counter()) - started
            route = route_template(scope)
            if self.metrics is not None:
                self.metrics.observe(scope["method"], route or "unmatched", status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                self._log(scope, context, route, status, seconds)
            CURRENT.reset(token)

    def _log(
        self, scope: Scope, context: RequestContext, route: str | None, status: int, seconds: float
    ) -> None:
        """The access line. Built with makeRecord and handle (what Logger.info does, less the
        walk up the stack for a caller's file and line: this line has one place of origin)."""
        duration_ms = round(seconds * 1000, 2)
        method = scope["method"]
        fields = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "user_id": context.user_id,
            "client": self._client(scope),
        }
        message = "%s %s %s %sms"
        args = (method, route or "(unmatched)", status, duration_ms)
        record = access_log.makeRecord(
            access_log.name,
            logging.INFO,
            __file__,
            0,
            message,
            args,
            None,
            extra={"fields": fields},
        )
        access_log.handle(record)

    def _client(self, scope: Scope) -> str | None:
        """The client address as the operations see it; the socket peer parsed once per peer."""
        if self.http.client_address_header:
            return client_address(Request(scope), self.http)
        peer = scope.get("client")
        return plain_address(peer[0]) if peer else None

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Samples this worker's gauges while it serves; its gauges leave the sums when it
        stops. Services exist once the app's own lifespan has started."""
        from .metrics import sample_forever
        from .multiprocess import forget_process

        sampler: asyncio.Task[None] | None = None

        async def watch(message: Message) -> None:
            nonlocal sampler
            if message["type"] == "lifespan.startup.complete":
                services = getattr(scope["app"].state, "services", None)
                if services is not None:
                    sampler = asyncio.create_task(sample_forever(services), name="metrics")
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            forget_process(os.getpid())
