"""Per-address and per-account limits, counted in the database so every instance shares them."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

from .config import Limit, RateLimits
from .errors import Code, ServiceError
from .observability.metrics import count_refusal
from .store import Connection, Store


class RateLimiter:
    def __init__(self, settings: RateLimits, store: Store) -> None:
        self.settings = settings
        self.store = store

    async def hit_address(self, conn: Connection, action: str, address: str | None) -> None:
        """Every attempt from one client address counts (IPv6 by /64, what one host gets).

        An unknown address (a unix socket without a trusted header) is not limited here rather
        than lumped with every other client into one bucket anyone could fill.
        """
        if address is not None:
            await self._hit(
                conn, f"address:{action}:{address_bucket(address)}", self.settings.per_address
            )

    async def hit_account(self, conn: Connection, action: str, account: str) -> None:
        """Count an attempt against one account before doing the work, so parallel guesses
        cannot all slip under the limit."""
        await self._hit(conn, _account_key(action, account), self.settings.per_account)

    async def forgive_account(self, conn: Connection, action: str, account: str) -> None:
        """A successful attempt gives its count back: only failures use up the window."""
        if self.settings.enabled:
            await self.store.forgive_rate_limit(conn, _account_key(action, account))

    async def hit_mail(self, conn: Connection, kind: str, recipient: str) -> None:
        """One more mail of `kind` to a recipient: an address, or `id:<user id>` for the
        account. Each kind has its own budget: a welcome mail does not use up the budget of a
        sign-in code."""
        key = f"mail:{kind}:{recipient.lower()}"
        await self._hit(conn, key, self.settings.email_sent, Code.EMAIL_RATE_LIMITED)

    async def hit_verify(self, conn: Connection, subject: str) -> None:
        """One more code tried for a subject (an address, or `id:<user id>`), counted before
        it is checked: once the budget is spent even the right code waits for the window."""
        await self._hit(conn, f"verify:{subject.lower()}", self.settings.verify)

    async def forgive_verify(self, conn: Connection, subject: str) -> None:
        """The right code gives its count back: only wrong ones use up the window."""
        if self.settings.enabled:
            await self.store.forgive_rate_limit(conn, f"verify:{subject.lower()}")

    async def hit_factor(self, conn: Connection, factor_id: str, limit: Limit) -> None:
        """One more code tried against a second factor, counted before it is checked; counted
        even with rate_limits.enabled off, since six digits fall to unlimited guessing."""
        await self._hit(conn, f"factor:{factor_id}", limit, always=True)

    async def forgive_factor(self, conn: Connection, factor_id: str) -> None:
        await self.store.forgive_rate_limit(conn, f"factor:{factor_id}")

    async def _hit(
        self,
        conn: Connection,
        key: str,
        limit: Limit,
        code: Code = Code.RATE_LIMITED,
        *,
        always: bool = False,
    ) -> None:
        if not (self.settings.enabled or always):
            return
        hits, started = await self.store.hit_rate_limit(conn, key, limit.window)
        if hits > limit.requests:
            count_refusal(*_metric_labels(key))
            raise _too_many(started, limit, code)


def _metric_labels(key: str) -> tuple[str, str]:
    """(scope, action) of a key, without the address, account or code it names: `address:login:…`
    -> (address, login), `verify:…` -> (verify, verify)."""
    scope, _, rest = key.partition(":")
    if scope in ("address", "account", "mail"):
        return scope, rest.partition(":")[0]
    return scope, scope


def _account_key(action: str, account: str) -> str:
    return f"account:{action}:{account.lower()}"


def address_bucket(address: str) -> str:
    """IPv4 as is; IPv6 by its /64 network."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _too_many(
    window_started_at: datetime, limit: Limit, code: Code = Code.RATE_LIMITED
) -> ServiceError:
    elapsed = (datetime.now(UTC) - window_started_at).total_seconds()
    retry_after = max(1, int(limit.window - elapsed) + 1)
    message = (
        "Too many emails of this kind; wait before asking again"
        if code is Code.EMAIL_RATE_LIMITED
        else "Too many attempts; wait before trying again"
    )
    return ServiceError(code, message, retry_after=retry_after)
