"""Shared by the fuzzers: one service on one database for a whole module (a fresh database per
generated case would cost seconds each), the credentials a caller can hold, and a fingerprint
of the auth tables to prove that a refused request changed nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from postgrest_auth.app import create_app
from postgrest_auth.config import Settings
from postgrest_auth.tokens import TokenIssuer

from .support import Service, SmtpServer, dsn_for_database, free_port, make_settings, run_sql

SITE = "http://app.test:5173"
PASSWORD = "correct horse battery"
# What a request may change, by table: the rows as text (for the outbox, which mail was queued:
# the worker erases subject and bodies once it is sent).
ROWS = {
    "users": "t",
    "sessions": "t",
    "identities": "t",
    "mfa_factors": "t",
    "one_time_tokens": "t",
    "outbox": "(t.id, t.kind, t.recipient)",
}


def fuzz_settings(dsn: str, smtp_port: int | None = None) -> Settings:
    """The service as fuzzed: both APIs, a second factor, one provider (GitHub's shape, at a
    closed loopback port: /authorize only builds a URL, nothing is fetched)."""
    closed = f"http://127.0.0.1:{free_port()}"
    return make_settings(
        dsn,
        smtp_port,
        gotrue={"site_url": SITE, "redirect_urls": [SITE + "/**"]},
        providers={
            "github": {
                "kind": "github",
                "client_id": "fuzz",
                "client_secret": "fuzz-secret",
                "url": closed,
                "api_url": closed,
            }
        },
    )


@dataclass
class Credentials:
    """What a caller may present: a signed-in user's bearer token, and the anon and service
    keys (`apikey` for the GoTrue API; the service key opens its admin routes)."""

    service: Service
    anon_key: str
    service_key: str
    access_token: str = ""
    users: int = 0

    def sign_in(self) -> str:
        """A session of a new user: fuzzed requests may have changed the last one's password,
        address or ban, or deleted it."""
        self.users += 1
        email = f"fuzz{self.users}@example.com"
        with httpx.Client(base_url=self.service.base + "/v1", timeout=30) as api:
            r = api.post("/signup", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.access_token = r.json()["access_token"]
        return self.access_token

    def keep_signed_in(self) -> None:
        """Sign in anew when the token no longer opens GET /user."""
        r = httpx.get(
            self.service.base + "/v1/user",
            headers={"Authorization": f"Bearer {self.access_token}"},
            timeout=30,
        )
        if r.status_code != 200:
            self.sign_in()


@dataclass(frozen=True)
class FuzzStack:
    service: Service
    credentials: Credentials
    dsn: str


@contextmanager
def fuzz_service(admin_dsn: str) -> Iterator[FuzzStack]:
    """A database, an SMTP server and the service for one module; a fuzz user signed in."""
    name = f"fz_{uuid.uuid4().hex[:12]}"
    with ExitStack() as stack:
        run_sql(admin_dsn, f'create database "{name}"')
        stack.callback(run_sql, admin_dsn, f'drop database if exists "{name}" with (force)')
        dsn = dsn_for_database(admin_dsn, name)
        smtp = SmtpServer().start()
        stack.callback(smtp.stop)
        service = Service(fuzz_settings(dsn, smtp.port)).start()
        stack.callback(service.stop)
        issuer = TokenIssuer(service.settings)
        credentials = Credentials(
            service,
            anon_key=issuer.api_key(service.settings.roles.anonymous, 1),
            service_key=issuer.api_key(service.settings.roles.service, 1),
        )
        credentials.sign_in()
        yield FuzzStack(service, credentials, dsn)


FINGERPRINT = "select " + ", ".join(
    f"(select md5(coalesce(string_agg({row}::text, ',' order by {row}::text), '')) "
    f'from auth."{table}" t) as "{table}"'
    for table, row in ROWS.items()
)


class Tables:
    """The auth tables' fingerprint (one digest per table of ROWS) over one connection of
    its own: equal before and after means a request changed nothing there."""

    def __init__(self, dsn: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(asyncpg.connect(dsn))

    def fingerprint(self) -> dict[str, Any]:
        return dict(self.loop.run_until_complete(self.conn.fetchrow(FINGERPRINT)))

    def settled(self, service: Service, timeout: float = 15.0) -> dict[str, Any]:
        """The fingerprint once the work a 2xx answer left behind is done (the mail after a
        reset request is queued after the answer, by services.Afterwards, which the test
        process can see: the service runs in one of its threads)."""
        afterwards = service.server.config.app.state.services.afterwards
        deadline = time.monotonic() + timeout
        time.sleep(0.05)  # the answer is out; its background task is being handed over
        while afterwards._tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.fingerprint()

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


def document() -> dict[str, Any]:
    """The OpenAPI document as the app builds it for fuzz_settings (it does not depend on
    the database)."""
    return create_app(fuzz_settings("postgresql://nobody@127.0.0.1:1/none")).openapi()
