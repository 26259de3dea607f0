"""The service as it would refresh otherwise, for bench/rotation.py only; everything else is
the shipped service, with the same workers.

- `before_rotation`: a refresh token stays the session's for its life; a refresh with it is
  the single statement of old (`before_rotation_sql`: find the live session and its user, push
  its expiry at most once a minute) and answers the same token back.
- `synchronous_rotation`: rotation as shipped, but its commit waits for the WAL flush.

    python -m bench.refresh_variants VARIANT --config FILE
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from postgrest_auth import cli
from postgrest_auth.accounts import Grant, sessions
from postgrest_auth.accounts.context import ClientInfo
from postgrest_auth.accounts.grants import grant
from postgrest_auth.config import load_settings
from postgrest_auth.errors import Code, ServiceError
from postgrest_auth.services import Services
from postgrest_auth.session_tokens import hash_session_token
from postgrest_auth.store import ASYNC_COMMIT, CALLER_COLUMNS, LIVE, Store

VARIANT = "_BENCH_REFRESH_VARIANT"


def before_rotation_sql(store: Store) -> str:
    """The refresh by token of old, in one statement: the live session and its user, its
    expiry pushed forward when that gains more than a minute."""
    end = store._session_end("s.created_at")
    return (
        f"with s as (select id, user_id, created_at, expires_at, amr from {store.sessions}"
        f" where token_hash = $1 and {LIVE}),"
        f" pushed as (update {store.sessions} t set refreshed_at = now(), expires_at = {end}"
        f" from s where t.id = s.id and s.expires_at < {end} - interval '60 seconds'"
        " returning t.id, t.expires_at)"
        f" select {CALLER_COLUMNS}, s.id::text as session_id,"
        f" coalesce(p.expires_at, s.expires_at) as expires_at, {store.session_claims}"
        f" from s join {store.users} u on u.id = s.user_id left join pushed p on p.id = s.id"
    )


async def refresh_without_rotation(
    services: Services, client: ClientInfo, session_token: str
) -> Grant:
    """refresh_with_session_token as it was before rotation."""
    sql = before_rotation_sql(services.store)
    async with services.pool.acquire() as conn:
        row = await conn.fetchrow(sql, hash_session_token(session_token))
    if row is None:
        raise ServiceError(Code.SESSION_ENDED, "The session has ended; sign in again")
    return grant(services, row, session_token)


def synchronous_rotation_sql(
    store: Store, linked: bool = False, shipped: Any = Store._rotate_sql
) -> str:
    sql = shipped(store, linked)
    assert ASYNC_COMMIT in sql
    return sql.replace(ASYNC_COMMIT, "null")


def patch(variant: str) -> None:
    if variant == "before_rotation":
        sessions.refresh_with_session_token = refresh_without_rotation  # type: ignore[assignment]
    elif variant == "synchronous_rotation":
        Store._rotate_sql = synchronous_rotation_sql  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown variant {variant!r}")


def worker_app() -> Any:
    """One worker process (uvicorn starts each afresh): patched, then the shipped app."""
    patch(os.environ[VARIANT])
    return cli.worker_app()


def main() -> None:
    import uvicorn

    variant = sys.argv[1]
    patch(variant)  # refuses an unknown one before anything starts
    config = Path(sys.argv[sys.argv.index("--config") + 1])
    settings = load_settings(config, environ=False)
    os.environ[VARIANT] = variant
    os.environ[cli.WORKER_ARGS] = json.dumps({"config": str(config), "overrides": {}})
    uvicorn.run(
        "bench.refresh_variants:worker_app",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        server_header=False,
    )


if __name__ == "__main__":
    main()
