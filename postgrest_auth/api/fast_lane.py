"""The hottest requests answered ahead of FastAPI's middleware, routing and dependencies.

A bearer refresh or `GET /user` does one lookup and one signature; FastAPI's per-request
machinery (seven middleware layers, the router, the dependency graph, reading an empty body)
cost about a third more CPU than that work (measured: issue 13's note). A fast route takes only
requests that need none of it: known by method, path and headers alone, with no body, and no
Origin for CORS to answer. It calls the same account operations and answer builders as the
documented route, and its errors go to the app's own exception handlers, so the two cannot
answer differently. Everything else takes the documented route, which also carries the OpenAPI
entry. Request ids, metrics and the access line stay around both (ObservabilityMiddleware).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import FastAPI
from starlette._exception_handler import wrap_app_handling_exceptions
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..accounts import sessions
from ..services import Services
from .caller import bearer_token, find_caller
from .csrf import refuse_cross_origin_writes
from .deps import get_client_info
from .grants import token_body
from .original.profile import user_body

Answer = Callable[[Request, Services], Awaitable[Response]]


def has_body(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether the request announces a body (HTTP/1.1: a length above 0, or chunks)."""
    for name, value in headers:
        if name == b"content-length" and value.strip() not in (b"", b"0"):
            return True
        if name == b"transfer-encoding":
            return True
    return False


def has_bearer(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether an Authorization header names a bearer token (what `bearer_token` reads)."""
    return any(
        name == b"authorization" and value[:7].lower() == b"bearer " and value[7:].strip()
        for name, value in headers
    )


class FastRoute:
    """Matches `method path` when the request carries a bearer token and no body; answers it
    with `answer`. Named like the documented route in metrics and logs (`path_format`)."""

    def __init__(self, method: str, path: str, answer: Answer) -> None:
        self.method = method
        self.path = self.path_format = path  # path_format: the route template metrics use
        self.answer = answer

    def matches(self, scope: Scope) -> bool:
        return (
            scope["path"] == self.path
            and scope["method"] == self.method
            and has_bearer(scope["headers"])
            and not has_body(scope["headers"])
        )

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        services = request.app.state.services
        await refuse_cross_origin_writes(request, services)  # the original routers' dependency
        response = await self.answer(request, services)
        await response(scope, receive, send)


async def bearer_refresh(request: Request, services: Services) -> Response:
    """POST /refresh_token with only a bearer token: the session extended, a new access token."""
    token = bearer_token(request)
    assert token is not None  # has_bearer
    client = await get_client_info(request, services)
    granted = await sessions.refresh_with_access_token(services, client, token)
    return _json(lambda headers: token_body(services, headers, granted))


async def current_user(request: Request, services: Services) -> Response:
    """GET /user with a bearer token."""
    caller = await find_caller(services, request)
    assert caller is not None  # a bearer token is there: refused or found
    return JSONResponse(user_body(caller.user, caller.session_id))


def _json(build: Callable[[Response], dict[str, Any]]) -> Response:
    """A JSON answer whose builder may set cookies, as a FastAPI endpoint's `response` does."""
    headers = Response()
    answer = JSONResponse(build(headers))
    answer.raw_headers += [h for h in headers.raw_headers if h[0] == b"set-cookie"]
    return answer


def fast_routes(prefix: str) -> list[FastRoute]:
    """The lane for the original API under `prefix`."""
    return [
        FastRoute("POST", prefix + "/refresh_token", bearer_refresh),
        FastRoute("GET", prefix + "/user", current_user),
    ]


class FastLane:
    """ASGI: a request a fast route matches is answered by it; any other goes to `stack`, the
    app's whole middleware stack. `cors`: whether CORSMiddleware (in the stack) must see
    requests that carry an Origin."""

    def __init__(self, app: FastAPI, stack: ASGIApp, routes: list[FastRoute], cors: bool) -> None:
        self.app = app
        self.stack = stack
        self.routes = routes
        self.cors = cors
        # Built with the stack, on the first request: every handler is installed by then.
        self.handlers = dict(app.exception_handlers)
        self.unexpected = self.handlers.pop(Exception)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not (self.cors and _has(scope, b"origin")):
            for route in self.routes:
                if route.matches(scope):
                    scope.update(app=self.app, route=route, path_params={})
                    await self._answer(route, scope, receive, send)
                    return
        await self.stack(scope, receive, send)

    async def _answer(self, route: FastRoute, scope: Scope, receive: Receive, send: Send) -> None:
        """With the app's exception handlers, as ExceptionMiddleware and ServerErrorMiddleware
        apply them: a refusal in the API's shape; anything unexpected answered 500 in it too,
        then raised on for the log."""
        scope["starlette.exception_handlers"] = (self.handlers, {})
        request = Request(scope, receive)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await wrap_app_handling_exceptions(route.handle, request)(scope, receive, tracked)
        except Exception as exc:
            if not started:  # else the answer is cut short: the server closes the connection
                response = await self.unexpected(request, exc)
                await response(scope, receive, send)
            raise


def _has(scope: Scope, header: bytes) -> bool:
    return any(name == header for name, _ in scope["headers"])
