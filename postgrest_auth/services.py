"""What the account operations need, built once per app by the lifespan. No HTTP here."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from .config import Settings
from .mail import MailTemplates, Outbox
from .passwords import PasswordHasher
from .ratelimit import RateLimiter
from .store import Store
from .tokens import TokenIssuer

if TYPE_CHECKING:
    from .identities.registry import Providers
    from .identities.statements import IdentityStore
    from .mfa.statements import FactorStore

log = logging.getLogger(__name__)


class Afterwards:
    """Work that must not make an answer slower or faster: it runs detached, after the answer
    has gone out, so not even the next request on the same keep-alive connection waits for it,
    and after a random pause, so it lines up with no particular later request either.
    Failures are logged, never shown; shutdown waits for what is under way."""

    MAX_PAUSE_MS = 250

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    async def detach(self, work: Callable[[], Awaitable[None]], what: str) -> None:
        task = asyncio.create_task(self._quietly(work, what), name=what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, seconds: float) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=seconds)

    async def _quietly(self, work: Callable[[], Awaitable[None]], what: str) -> None:
        await asyncio.sleep(secrets.randbelow(self.MAX_PAUSE_MS) / 1000)
        try:
            await work()
        except Exception as exc:
            log.warning("%s, after its answer, failed: %s", what, type(exc).__name__)


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    store: Store
    hasher: PasswordHasher
    tokens: TokenIssuer
    outbox: Outbox
    limiter: RateLimiter
    afterwards: Afterwards
    providers: Providers
    identities: IdentityStore
    factors: FactorStore

    @classmethod
    def build(cls, settings: Settings, pool: asyncpg.Pool, hasher: PasswordHasher) -> Services:
        """The service's parts over `pool`: one recipe for the server and the command line."""
        # Here, not at the top: they build on the account operations, which import this module.
        from .identities.registry import Providers
        from .identities.statements import IdentityStore
        from .mfa.statements import FactorStore

        store = Store(settings)
        return cls(
            settings=settings,
            pool=pool,
            store=store,
            hasher=hasher,
            tokens=TokenIssuer(settings),
            outbox=Outbox(settings, store, MailTemplates(settings.email.templates_dir)),
            limiter=RateLimiter(settings.rate_limit, store),
            afterwards=Afterwards(),
            providers=Providers(settings),
            identities=IdentityStore(store),
            factors=FactorStore(store),
        )
