"""The original API (`/auth/users`, `/auth/refresh_token`, …): the Node original's endpoints
and shapes, plus sessions, over the account operations."""

from fastapi import APIRouter

from . import accounts, recovery, sessions, tokens

ROUTERS: tuple[APIRouter, ...] = (
    accounts.router,
    tokens.router,
    recovery.router,
    sessions.router,
)
