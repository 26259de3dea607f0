"""Every refusal answered in the shape of the API the request was for; JSON always, never
HTML, never a stack trace. The cause of a refusal goes to the log, not to the client."""

from __future__ import annotations

import logging
from collections.abc import Callable

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from ..errors import DATABASE_RETRY_AFTER, DATABASE_UNAVAILABLE_ERRORS, Code, ServiceError
from .original.errors import render as render_original

log = logging.getLogger(__name__)

Renderer = Callable[[ServiceError], Response]

HTTP_CODES = {404: Code.NOT_FOUND, 405: Code.METHOD_NOT_ALLOWED}


class ErrorShapes:
    """Which renderer answers a path: the longest matching prefix, else the original's."""

    def __init__(self) -> None:
        self._by_prefix: list[tuple[str, Renderer]] = []

    def add(self, prefix: str, renderer: Renderer) -> None:
        self._by_prefix.append((prefix, renderer))
        self._by_prefix.sort(key=lambda entry: len(entry[0]), reverse=True)

    def render(self, path: str, error: ServiceError) -> Response:
        for prefix, renderer in self._by_prefix:
            if path == prefix or path.startswith(prefix + "/"):
                return renderer(error)
        return render_original(error)


def install_error_handlers(app: FastAPI, shapes: ErrorShapes) -> None:
    app.state.error_shapes = shapes

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        cause = exc.__cause__
        if cause is not None:
            # The cause's kind and constraint only: a database error's text quotes the values
            # (an address, a username) that broke the rule.
            log.info(
                "%s %s refused (%s), cause: %s %s %s",
                request.method,
                request.url.path,
                exc.code,
                type(cause).__name__,
                getattr(cause, "sqlstate", "") or "",
                getattr(cause, "constraint_name", "") or "",
            )
        return shapes.render(request.url.path, exc)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, Code.VALIDATION_FAILED)
        message = exc.detail if isinstance(exc.detail, str) else "Not allowed"
        response = shapes.render(request.url.path, ServiceError(code, message))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": str(e["loc"][-1]), "location": str(e["loc"][0]), "messages": [e["msg"]]}
            for e in exc.errors()
        ]
        refusal = ServiceError(Code.VALIDATION_FAILED, "Some fields are not valid", errors)
        return shapes.render(request.url.path, refusal)

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable during %s: %s", request.url.path, type(exc).__name__)
        refusal = ServiceError(
            Code.DATABASE_UNAVAILABLE,
            "The database is unavailable or busy; try again shortly",
            retry_after=DATABASE_RETRY_AFTER,
        )
        return shapes.render(request.url.path, refusal)

    for exc_class in DATABASE_UNAVAILABLE_ERRORS:
        app.add_exception_handler(exc_class, database_unavailable)

    # Bodies are checked field by field (forms.unstorable); this answers for query strings and
    # paths, where a %00 reaches the database only as a parameter.
    @app.exception_handler(asyncpg.CharacterNotInRepertoireError)
    @app.exception_handler(asyncpg.UntranslatableCharacterError)
    async def unstorable_text(request: Request, exc: Exception) -> Response:
        refusal = ServiceError(
            Code.VALIDATION_FAILED, "The request holds a character the database cannot store (NUL)"
        )
        return shapes.render(request.url.path, refusal)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Starlette re-raises after answering, so the server logs the traceback once.
        refusal = ServiceError(Code.INTERNAL_ERROR, "Something went wrong on our side")
        return shapes.render(request.url.path, refusal)
