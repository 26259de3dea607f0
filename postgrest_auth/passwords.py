"""Password hashing policy. bcrypt costs tens of milliseconds: never on the event loop."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from . import bcrypt_backends
from .bcrypt_backends import Backend
from .config import Passwords

T = TypeVar("T")


def bcrypt_cost(hashed: str) -> int | None:
    """The cost a bcrypt hash was made at, None when it is not one we verify."""
    parsed = bcrypt_backends.parse(hashed)
    return parsed.cost if parsed else None


def usable_cores() -> int:
    """The cores this process may run on (a container's cpuset, taskset), not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class PasswordHasher:
    """Hashes and verifies off the event loop, one thread per usable core (both bcrypt backends
    release the GIL); sign-ups and sign-ins share the threads."""

    def __init__(self, policy: Passwords, backend: Backend | None = None) -> None:
        self.policy = policy
        self._backend = backend or bcrypt_backends.default_backend()
        self._threads = usable_cores()
        self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="bcrypt")
        self._in_flight = 0  # hashes handed to the threads and not yet back (event loop only)
        # Verified against when the account does not exist, so both answers cost the same.
        # Its cost follows the stored hashes (set_dummy_cost), not necessarily the policy.
        self._dummy_hash = self._hash_at(secrets.token_urlsafe(16), policy.bcrypt_rounds)
        self._dummy_lock = asyncio.Lock()

    @property
    def backend_name(self) -> str:
        """Who computes bcrypt here ("libxcrypt" or "bcrypt package"), for the bench and logs."""
        return self._backend.name

    @property
    def dummy_cost(self) -> int:
        """The cost unknown accounts are verified at, read off the dummy hash itself."""
        cost = bcrypt_cost(self._dummy_hash)
        assert cost is not None
        return cost

    async def set_dummy_cost(self, cost: int | None) -> bool:
        """Make the dummy hash at `cost` (None, or outside bcrypt's range: the configured one).

        Why: a login verifies a known account against its stored hash, which keeps the cost
        it was made at until that user's next login rehashes it. After an operator raises
        (or lowers) bcrypt_rounds, a dummy at the configured cost would make unknown accounts
        measurably slower (or faster) than known ones: user enumeration by timing. So the
        caller passes the stored hashes' most common cost (Store.most_common_password_cost).
        Hashed off the event loop, and only when the cost changes. True when it changed.
        """
        if cost is None or not bcrypt_backends.MIN_COST <= cost <= bcrypt_backends.MAX_COST:
            cost = self.policy.bcrypt_rounds
        async with self._dummy_lock:
            if cost == self.dummy_cost:
                return False
            self._dummy_hash = await self._run(self._hash_at, secrets.token_urlsafe(16), cost)
            return True

    @property
    def queue_depth(self) -> int:
        """Hashes waiting for a free thread: what a sign-in waits for beyond its own bcrypt."""
        return max(0, self._in_flight - self._threads)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def too_long(self, password: str) -> bool:
        return len(password.encode()) > self.policy.max_bytes

    async def hash(self, password: str) -> str:
        """A `$2b$` hash at the configured cost; ValueError for a NUL or more than 72 bytes."""
        return await self._run(self._hash_at, password, self.policy.bcrypt_rounds)

    async def verify(self, password: str, stored_hash: str | None) -> tuple[bool, str | None]:
        """(matches, new hash when the stored one should be rewritten at the configured cost)."""
        if self.too_long(password):
            # bcrypt cannot take it; spend the same time and refuse.
            await self._run(self._verify_and_update, "x", self._dummy_hash)
            return False, None
        if stored_hash is None:
            await self._run(self._verify_and_update, password, self._dummy_hash)
            return False, None
        if bcrypt_backends.parse(stored_hash) is None:
            return False, None  # not a bcrypt hash (or a refused one, as $2x$): never a match
        return await self._run(self._verify_and_update, password, stored_hash)

    def _hash_at(self, password: str, cost: int) -> str:
        return bcrypt_backends.make_hash(self._backend, password.encode(), cost)

    def _verify_and_update(self, password: str, stored_hash: str) -> tuple[bool, str | None]:
        """In a hashing thread: the verification and, when due, the new hash, in one hand-off."""
        if not bcrypt_backends.verify(self._backend, password.encode(), stored_hash):
            return False, None
        if bcrypt_backends.needs_rehash(stored_hash, self.policy.bcrypt_rounds):
            return True, self._hash_at(password, self.policy.bcrypt_rounds)
        return True, None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._in_flight -= 1
