"""Unknown accounts are verified against a dummy hash at the stored hashes' most common cost,
not the configured one: after bcrypt_rounds is raised, old hashes keep their cost until their
owner's next login, and a dummy at the new cost would tell unknown accounts apart by timing.
The costs are inspected; nothing is timed."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import bcrypt

from postgrest_auth.config import Passwords
from postgrest_auth.passwords import PasswordHasher, bcrypt_cost
from postgrest_auth.store import Store

from .support import NODE_SCHEMA, Service, make_settings, run_script, run_sql, wait_until


def cost_hash(password: str, rounds: int, prefix: bytes = b"2b") -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds, prefix=prefix)).decode()


def insert_user(dsn: str, username: str, password_hash: str | None) -> None:
    run_sql(
        dsn,
        "insert into auth.users (username, username_lowercase, password)"
        " values ($1::text, lower($1::text), $2)",
        username,
        password_hash,
    )


def most_common_cost(dsn: str, **kwargs: Any) -> int | None:
    store = Store(make_settings(dsn))

    async def go() -> int | None:
        conn = await asyncpg.connect(dsn)
        try:
            return await store.most_common_password_cost(conn, **kwargs)
        finally:
            await conn.close()

    return asyncio.run(go())


def hasher_of(service: Service) -> PasswordHasher:
    return service.server.config.app.state.services.hasher


def test_bcrypt_cost_reads_every_ident() -> None:
    assert bcrypt_cost(cost_hash("x", 4)) == 4
    assert bcrypt_cost(cost_hash("x", 5, b"2a")) == 5
    assert bcrypt_cost("$2y$12$" + "a" * 53) == 12
    assert bcrypt_cost("$argon2id$v=19$m=65536,t=3,p=4$abc") is None
    assert bcrypt_cost("") is None


def test_dummy_follows_the_requested_cost() -> None:
    async def go() -> None:
        hasher = PasswordHasher(Passwords(bcrypt_rounds=6))
        try:
            assert hasher.dummy_cost == 6
            assert hasher._dummy_hash.startswith("$2b$06$")
            assert await hasher.set_dummy_cost(4) is True
            assert hasher._dummy_hash.startswith("$2b$04$")
            assert hasher.dummy_cost == 4
            before = hasher._dummy_hash
            assert await hasher.set_dummy_cost(4) is False  # unchanged: not rehashed
            assert hasher._dummy_hash is before
            # Unknown accounts and too long passwords still verify against it, and fail.
            assert await hasher.verify("whatever1", None) == (False, None)
            assert await hasher.verify("x" * 100, None) == (False, None)
            # No stored hashes, or a cost bcrypt cannot make: the configured cost.
            assert await hasher.set_dummy_cost(None) is True
            assert hasher.dummy_cost == 6
            await hasher.set_dummy_cost(5)
            await hasher.set_dummy_cost(99)
            assert hasher.dummy_cost == 6
            await hasher.set_dummy_cost(5)
            await hasher.set_dummy_cost(3)
            assert hasher.dummy_cost == 6
            # New hashes keep the configured cost whatever the dummy's.
            await hasher.set_dummy_cost(4)
            assert bcrypt_cost(await hasher.hash("a password")) == 6
        finally:
            hasher.close()

    asyncio.run(go())


def test_store_most_common_cost(dsn: str) -> None:
    run_script(dsn, NODE_SCHEMA)
    assert most_common_cost(dsn) is None  # empty table
    insert_user(dsn, "nopassword", None)
    insert_user(dsn, "otherscheme", "$argon2id$v=19$m=65536,t=3,p=4$abc")
    assert most_common_cost(dsn) is None  # no bcrypt hash
    insert_user(dsn, "five", cost_hash("pw", 5))
    assert most_common_cost(dsn) == 5
    insert_user(dsn, "four1", cost_hash("pw", 4, b"2a"))
    insert_user(dsn, "four2", cost_hash("pw", 4))
    assert most_common_cost(dsn) == 4
    insert_user(dsn, "five2", cost_hash("pw", 5))
    assert most_common_cost(dsn) == 5  # a tie: the higher cost


def test_store_most_common_cost_samples_large_tables(dsn: str) -> None:
    """With a row estimate above sample_rows the table is block-sampled; a sample that finds
    nothing (a stale estimate after deletes) falls back to the whole table."""
    run_script(dsn, NODE_SCHEMA)
    four = cost_hash("pw", 4)
    run_sql(
        dsn,
        "insert into auth.users (username, username_lowercase, password)"
        " select 'u' || g, 'u' || g, $1 from generate_series(1, 5000) g",
        four,
    )
    run_script(dsn, "analyze auth.users")
    assert most_common_cost(dsn, sample_rows=100) == 4
    assert most_common_cost(dsn, sample_rows=None) == 4
    # The estimate still says 5000 rows; one is left, which a 2 % sample would likely miss.
    run_script(dsn, "delete from auth.users where username <> 'u1'")
    assert most_common_cost(dsn, sample_rows=100) == 4


def test_service_starts_with_the_dummy_at_the_stored_cost(dsn: str, smtp: Any) -> None:
    """Hashes made at cost 4, the service now configured for 6: the dummy stays at 4 until
    most stored hashes are at 6 (the janitor looks again every cleanup_interval)."""
    run_script(dsn, NODE_SCHEMA)
    insert_user(dsn, "old", cost_hash("old password", 4))
    settings = make_settings(
        dsn, smtp.port, passwords={"bcrypt_rounds": 6}, sessions={"cleanup_interval": 0.2}
    )
    service = Service(settings).start()
    try:
        hasher = hasher_of(service)
        assert hasher.policy.bcrypt_rounds == 6
        assert hasher.dummy_cost == 4
        assert hasher._dummy_hash.startswith("$2b$04$")
        with service.client() as client:
            unknown = client.post("/login", json={"username": "nobody", "password": "whatever1"})
            assert unknown.status_code == 401
            for name in ("new1", "new2"):
                r = client.post("/users", json={"username": name, "password": "new password"})
                assert r.status_code == 201, r.text
        assert {bcrypt_cost(h) for (h,) in run_sql(dsn, "select password from auth.users")} == {
            4,
            6,
        }
        # Two hashes at 6, one at 4: the janitor moves the dummy to 6.
        wait_until(lambda: hasher.dummy_cost == 6, timeout=10)
    finally:
        service.stop()


def test_service_without_users_uses_the_configured_cost(dsn: str, smtp: Any) -> None:
    service = Service(make_settings(dsn, smtp.port, passwords={"bcrypt_rounds": 5})).start()
    try:
        assert hasher_of(service).dummy_cost == 5
    finally:
        service.stop()
