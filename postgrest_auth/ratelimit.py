"""Per-address and per-account limits, counted in the database so every instance shares them."""

from __future__ import annotations

from datetime import UTC, datetime

from .config import Limit, RateLimits
from .errors import ApiError
from .store import Connection, Store


class RateLimiter:
    def __init__(self, settings: RateLimits, store: Store) -> None:
        self.settings = settings
        self.store = store

    async def hit_address(self, conn: Connection, action: str, address: str) -> None:
        """Every attempt from one client address counts."""
        await self._hit(conn, f"address:{action}:{address}", self.settings.per_address)

    async def hit_account(self, conn: Connection, action: str, account: str) -> None:
        """Attempts against one account (failed logins, mail requests) count."""
        await self._hit(conn, f"account:{action}:{account.lower()}", self.settings.per_account)

    async def check_account(self, conn: Connection, action: str, account: str) -> None:
        """Refuse when the account's window is full, without counting this attempt."""
        if not self.settings.enabled:
            return
        limit = self.settings.per_account
        row = await self.store.rate_limit_hits(
            conn, f"account:{action}:{account.lower()}", limit.window
        )
        if row is not None and row["hits"] >= limit.requests:
            raise _too_many(row["window_started_at"], limit)

    async def _hit(self, conn: Connection, key: str, limit: Limit) -> None:
        if not self.settings.enabled:
            return
        hits, started = await self.store.hit_rate_limit(conn, key, limit.window)
        if hits > limit.requests:
            raise _too_many(started, limit)


def _too_many(window_started_at: datetime, limit: Limit) -> ApiError:
    elapsed = (datetime.now(UTC) - window_started_at).total_seconds()
    retry_after = max(1, int(limit.window - elapsed) + 1)
    return ApiError(
        429,
        "rate_limited",
        "Too many attempts; wait before trying again",
        headers={"Retry-After": str(retry_after)},
    )
