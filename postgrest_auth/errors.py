"""The error shape of the original's production mode, for every refusal the service makes.

`{"status", "statusText", "code", "message", "errors": [{"field", "location", "messages"}]}`:
JSON always, never HTML, never a stack trace.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

DATABASE_RETRY_AFTER = "5"


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []
        self.headers = headers or {}


def field_error(field: str, *messages: str) -> dict[str, Any]:
    return {"field": field, "location": "body", "messages": list(messages)}


def invalid(errors: list[dict[str, Any]], message: str = "Some fields are not valid") -> ApiError:
    return ApiError(400, "validation_failed", message, errors)


def unauthorized(code: str, message: str, bearer_error: str | None = None) -> ApiError:
    challenge = "Bearer" + (f' error="{bearer_error}"' if bearer_error else "")
    return ApiError(401, code, message, headers={"WWW-Authenticate": challenge})


def error_response(
    status: int,
    code: str,
    message: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {
        "status": status,
        "statusText": HTTPStatus(status).phrase,
        "code": code,
        "message": message,
        "errors": errors or [],
    }
    return JSONResponse(body, status_code=status, headers=headers)


# What a lost or restarting database raises; answered 503 and never logged as a crash.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    # 55000 at connect: the database is not accepting connections (allow_connections false)
    asyncpg.ObjectNotInPrerequisiteStateError,
    # a connection killed mid-statement can leave asyncpg's protocol in a state it refuses
    asyncpg.InternalClientError,
    # the database asks for the transaction to be tried again
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.errors, exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return error_response(exc.status_code, code, message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": str(e["loc"][-1]),
                "location": str(e["loc"][0]),
                "messages": [e["msg"]],
            }
            for e in exc.errors()
        ]
        return error_response(400, "validation_failed", "Some fields are not valid", errors)

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable during %s: %s", request.url.path, type(exc).__name__)
        return error_response(
            503,
            "database_unavailable",
            "The database is unavailable or busy; try again shortly",
            headers={"Retry-After": DATABASE_RETRY_AFTER},
        )

    for exc_class in DATABASE_UNAVAILABLE:
        app.add_exception_handler(exc_class, database_unavailable)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after answering, so the server logs the traceback once.
        return error_response(500, "internal_error", "Something went wrong on our side")
