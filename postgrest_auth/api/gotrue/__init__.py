"""The GoTrue-compatible API (`{prefix}/v1`): Supabase Auth's endpoints and shapes, so
`@supabase/supabase-js`, `@supabase/auth-js` and `supabase_auth` work unchanged, over the same
account operations as the original API."""

from fastapi import APIRouter

from . import accounts, admin, email, factors, identities, meta

PATH = "/v1"

ROUTERS: tuple[APIRouter, ...] = (
    accounts.router,
    email.router,
    meta.router,
    admin.router,
    identities.router,
    factors.router,
)
