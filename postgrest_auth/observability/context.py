"""The request being served, for log lines written anywhere during it.

One mutable object per request in a context variable: FastAPI runs sync dependencies in other
threads with a copy of the context, so a value set there would be lost, but a field set on the
shared object is seen by the middleware that writes the access line.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class RequestContext:
    request_id: str
    user_id: str | None = None


CURRENT: ContextVar[RequestContext | None] = ContextVar("postgrest_auth_request", default=None)


def note_user(user_id: Any) -> None:
    """The signed-in user (their UUID, the tokens' `sub`) once an operation knows it."""
    context = CURRENT.get()
    if context is not None and user_id is not None:
        context.user_id = str(user_id)
