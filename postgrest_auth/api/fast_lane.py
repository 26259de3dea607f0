"""The hottest requests answered without FastAPI's dependency resolution and body parsing.

A bearer refresh or `GET /user` does one lookup and one signature; FastAPI's per-request
machinery (dependency graph, body reading for an empty body, response model) costs about as
much again (the profile in bench/floor.py's issue note). A fast route takes only requests that
need none of it: known by method, path and headers alone, with no body. It calls the same
account operations and answer builders as the documented route; its errors go to the same
exception handlers, so the two cannot answer differently. Everything else (a body, a cookie
instead of a bearer token) takes the documented route, which also carries the OpenAPI entry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

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


class FastRoute(BaseRoute):
    """Matches `method path` when the request carries a bearer token and no body; answers it
    with `answer`. Ahead of the documented route in the router, named like it in metrics."""

    def __init__(self, method: str, path: str, answer: Answer) -> None:
        self.method = method
        self.path = self.path_format = path  # path_format: the route template metrics use
        self.answer = answer

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if (
            scope["type"] == "http"
            and scope["path"] == self.path
            and scope["method"] == self.method
            and has_bearer(scope["headers"])
            and not has_body(scope["headers"])
        ):
            return Match.FULL, {"route": self, "endpoint": self.answer, "path_params": {}}
        return Match.NONE, {}

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


def fast_routes(prefix: str) -> list[BaseRoute]:
    """The lane for the original API under `prefix`."""
    return [
        FastRoute("POST", prefix + "/refresh_token", bearer_refresh),
        FastRoute("GET", prefix + "/user", current_user),
    ]
