"""Request bodies: JSON or form-encoded (the original took both), validated into models."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import Request
from pydantic import BaseModel, Field, ValidationError

from ..errors import Code, ServiceError, field_error, invalid

M = TypeVar("M", bound=BaseModel)

# A field of a form: present, and short enough that no one can make bcrypt or a lookup slow.
Text = Annotated[str, Field(min_length=1, max_length=1024)]

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def unstorable(value: Any) -> str | None:
    """Why PostgreSQL could not store `value` as text or jsonb, if it could not: a NUL, or
    half of a UTF-16 surrogate pair (JSON's \\u escapes carry both). Caught here, they are a
    400 naming the field instead of a database error (a 500) deep in an operation."""
    if isinstance(value, str):
        if "\0" in value:
            return "must not contain NUL characters"
        try:
            value.encode()
        except UnicodeEncodeError:
            return "must be valid Unicode (no unpaired surrogates)"
        return None
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list):
        return next(filter(None, map(unstorable, value)), None)
    return None


def _refuse_unstorable(fields: dict[str, Any]) -> dict[str, Any]:
    problems = [
        field_error(name if unstorable(name) is None else "body", problem)
        for name, value in fields.items()
        if (problem := unstorable(name) or unstorable(value))
    ]
    if problems:
        raise invalid(problems)
    return fields


async def read_fields(request: Request) -> dict[str, Any]:
    """The body's fields, from JSON or a form; 400 for anything else or what cannot be stored."""
    fields = await _parse(request)
    try:
        return _refuse_unstorable(fields)
    except RecursionError:  # nested just below json's own limit
        raise ServiceError(Code.INVALID_JSON, "The body is nested too deeply") from None


async def _parse(request: Request) -> dict[str, Any]:
    raw = await request.body()
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not raw.strip():
        return {}
    if media_type == JSON or media_type.endswith("+json"):
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise ServiceError(Code.INVALID_JSON, "The body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ServiceError(Code.INVALID_JSON, "The body must be a JSON object")
        return data
    if media_type == FORM:
        try:
            return dict(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError:
            raise ServiceError(Code.INVALID_FORM, "The form is not valid UTF-8") from None
    raise ServiceError(Code.UNSUPPORTED_MEDIA_TYPE, f"Send the body as {JSON} or {FORM}")


def _field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "body"
        message = "This field is required" if error["type"] == "missing" else error["msg"]
        errors.setdefault(field, []).append(message)
    return [{"field": f, "location": "body", "messages": m} for f, m in errors.items()]


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route whose body `body(model)` parses: FastAPI cannot see it."""
    schema = model.model_json_schema()
    content = {"schema": schema}
    required = bool(schema.get("required"))  # logout and refresh_token may send no body
    return {"requestBody": {"required": required, "content": {JSON: content, FORM: content}}}


def body(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency that parses either content type into `model`, or answers 400 by field."""

    async def dependency(request: Request) -> M:
        fields = await read_fields(request)
        try:
            return model.model_validate(fields)
        except ValidationError as exc:
            raise invalid(_field_errors(exc)) from None

    return dependency
