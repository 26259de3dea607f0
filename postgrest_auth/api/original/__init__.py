"""The original API (`/auth/users`, `/auth/refresh_token`, …): the Node original's endpoints
and shapes, plus sessions, over the account operations."""

from fastapi import APIRouter

from . import (
    accounts,
    confirmation,
    factors,
    passwordless,
    profile,
    providers,
    recovery,
    sessions,
    tokens,
    verification,
)

ROUTERS: tuple[APIRouter, ...] = (
    accounts.router,
    tokens.router,
    recovery.router,
    sessions.router,
    passwordless.router,
    verification.router,
    confirmation.router,
    profile.router,
    providers.router,
    factors.router,
)
