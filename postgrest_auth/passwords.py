"""Password hashing policy. bcrypt costs tens of milliseconds: never on the event loop."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from passlib.context import CryptContext

from .config import Passwords

T = TypeVar("T")


class PasswordHasher:
    """Hashes and verifies off the event loop, one thread per core (bcrypt releases the GIL)."""

    def __init__(self, policy: Passwords) -> None:
        self.policy = policy
        self._context = CryptContext(
            schemes=["bcrypt"], bcrypt__rounds=policy.bcrypt_rounds, bcrypt__ident="2b"
        )
        self._executor = ThreadPoolExecutor(
            max_workers=os.cpu_count() or 1, thread_name_prefix="bcrypt"
        )
        # Verified against when the account does not exist, so both answers cost the same.
        self._dummy_hash = self._context.hash(secrets.token_urlsafe(16))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def too_long(self, password: str) -> bool:
        return len(password.encode()) > self.policy.max_bytes

    async def hash(self, password: str) -> str:
        return await self._run(self._context.hash, password)

    async def verify(self, password: str, stored_hash: str | None) -> tuple[bool, str | None]:
        """(matches, new hash when the stored one should be rewritten at the configured cost)."""
        if self.too_long(password):
            # bcrypt cannot take it; spend the same time and refuse.
            await self._run(self._context.verify, "x", self._dummy_hash)
            return False, None
        if stored_hash is None:
            await self._run(self._context.verify, password, self._dummy_hash)
            return False, None
        try:
            ok, new_hash = await self._run(self._context.verify_and_update, password, stored_hash)
        except ValueError:  # not a hash this policy knows: never a match
            return False, None
        return ok, new_hash

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
