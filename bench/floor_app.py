"""The floor bearer refreshes are measured against (DESIGN §13): a bare ASGI app, no framework,
no validation, doing the same work — verify an HS256 token, read its session and user in one
indexed query, sign a new token. Served by uvicorn (uvloop, httptools) as the service is.

Configured by environment: FLOOR_DSN, FLOOR_SECRET, FLOOR_SCHEMA (default auth), FLOOR_EXP.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.jwt import JWTClaimsRegistry

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# The JWT library the service uses, the fastest here (PyJWT 2.15 checks base64 per character).
KEY = OctKey.import_key(os.environ.get("FLOOR_SECRET", "").encode())
HEADER = {"alg": "HS256", "typ": "JWT"}
EXPIRY = JWTClaimsRegistry(exp={"essential": True})
SCHEMA = os.environ.get("FLOOR_SCHEMA", "auth")
EXP = int(os.environ.get("FLOOR_EXP", "3600"))
# The service's own claims function, so both sides ask the database for the same thing.
QUERY = (
    f'select "{SCHEMA}".access_claims(u, s.id, s.amr) as claims'
    f' from "{SCHEMA}".sessions s join "{SCHEMA}".users u on u.id = s.user_id'
    " where s.id = $1::uuid and s.revoked_at is null and s.expires_at > now()"
)
pool: asyncpg.Pool | None = None


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _no_reset(conn: asyncpg.Connection) -> None:
    """No session state is left on a connection: no reset round trip (as the service)."""


async def _lifespan(receive: Receive, send: Send) -> None:
    global pool
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            pool = await asyncpg.create_pool(
                os.environ["FLOOR_DSN"], min_size=8, max_size=8, reset=_no_reset
            )
            pool_ready = await pool.fetchval("select 1")
            assert pool_ready == 1
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if pool is not None:
                await pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    authorization = dict(scope["headers"]).get(b"authorization", b"")
    try:
        claims = jwt.decode(authorization.removeprefix(b"Bearer "), KEY, ["HS256"]).claims
        EXPIRY.validate(claims)
    except (JoseError, ValueError):
        await _answer(send, 401, b'{"error":"invalid_token"}')
        return
    assert pool is not None
    row = await pool.fetchrow(QUERY, claims["sid"])
    if row is None:
        await _answer(send, 401, b'{"error":"session_ended"}')
        return
    now = int(time.time())
    fresh = {**json.loads(row["claims"]), "iat": now, "exp": now + EXP, "jti": str(uuid.uuid4())}
    token = jwt.encode(HEADER, fresh, KEY, ["HS256"])
    body = {"access_token": token, "token_type": "bearer", "expires_in": EXP}
    await _answer(send, 200, json.dumps(body).encode())
