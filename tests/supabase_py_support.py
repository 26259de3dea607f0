"""Helpers for driving the real `supabase_auth` client (PyPI) against the service: one test body
runs the SYNC and the ASYNC client alike, mails are read as their recipient reads them, and the
admin client gets a service-role token."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from supabase_auth import AsyncGoTrueClient, SyncGoTrueClient
from supabase_auth._async.gotrue_base_api import AsyncGoTrueBaseAPI

from postgrest_auth.config import Settings

from .email_flows import LINK, Mailed, read_secret
from .support import SECRET, SmtpServer, body_text, wait_until

KINDS = ("sync", "async")


class Blocking:
    """An async client seen through blocking calls: each coroutine runs to its end on one event
    loop kept for the test, so the client's timers and its httpx.AsyncClient live on a real,
    running loop, while the test reads as the sync one does."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if isinstance(value, AsyncGoTrueBaseAPI):  # client.admin
            return Blocking(value, self._loop)
        if inspect.iscoroutinefunction(value):

            def call(*args: Any, **kwargs: Any) -> Any:
                return self._loop.run_until_complete(value(*args, **kwargs))

            return call
        return value


class Clients:
    """Makes clients of one kind (sync or async) for a test and closes them all at its end."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url
        self.loop = asyncio.new_event_loop() if kind == "async" else None
        self.made: list[Any] = []

    def __call__(self, **options: Any) -> Any:
        """A client of this kind at the service's `/auth/v1`; options as the client takes them
        (flow_type, headers, storage_key, …)."""
        if self.loop is None:
            client = SyncGoTrueClient(url=self.url, **options)
            self.made.append(client)
            return client
        made = self.loop.run_until_complete(_async_client(self.url, options))
        self.made.append(made)
        return Blocking(made, self.loop)

    def close(self) -> None:
        for client in self.made:
            timer = getattr(client, "_refresh_token_timer", None)
            if timer is not None:  # a sync client's refresh thread, due in an hour
                timer.cancel()
            if self.loop is None:
                client.close()
            else:
                self.loop.run_until_complete(_close_async(client))
        if self.loop is not None:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:  # the clients' refresh timers, which would fire in an hour
                task.cancel()
            self.loop.run_until_complete(_settle(pending))
            self.loop.close()


async def _async_client(url: str, options: dict[str, Any]) -> AsyncGoTrueClient:
    """Made inside the loop, as an application makes it."""
    return AsyncGoTrueClient(url=url, **options)


async def _settle(tasks: set[asyncio.Task[Any]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


async def _close_async(client: AsyncGoTrueClient) -> None:
    await client.close()


def clients(kind: str, url: str) -> Iterator[Clients]:
    made = Clients(kind, url)
    try:
        yield made
    finally:
        made.close()


def secret_mail(smtp: SmtpServer, address: str, kind: str | None, count: int = 1) -> Mailed:
    """The `count`-th mail to `address` with a link (whose `type` is `kind`, unless None): its
    link and 6-digit code, as the recipient reads them."""

    def found() -> list[Mailed]:
        mails = [read_secret(m) for m in smtp.mailbox.to(address) if LINK.search(body_text(m))]
        return [m for m in mails if kind is None or m.type == kind]

    return wait_until(lambda: len(found()) >= count and found())[count - 1]


def service_role_token(settings: Settings, lifetime: int = 3600) -> str:
    """What an operator gives a server-side supabase_auth client as its key (GoTrue's
    service_role key): a token with the role `roles.service`, signed with the secret."""
    now = int(time.time())
    claims = {"role": settings.roles.service, "iss": settings.payload.iss}
    return jwt.encode({**claims, "iat": now, "exp": now + lifetime}, SECRET, algorithm="HS256")


def rsa_key_file(directory: Path) -> Path:
    """A fresh RS256 signing key as PKCS#8 PEM (what `jwt.keys[].private_key_file` reads)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "rs256.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path
