"""What a request handler needs, built once per app by the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from .config import Settings
from .mail import Outbox
from .passwords import PasswordHasher
from .ratelimit import RateLimiter
from .store import Store
from .tokens import TokenIssuer


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    store: Store
    hasher: PasswordHasher
    tokens: TokenIssuer
    outbox: Outbox
    limiter: RateLimiter


async def get_services(request: Request) -> Services:
    """Async on purpose: a sync dependency would cost a thread-pool hop per request."""
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
