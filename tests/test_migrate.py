"""Migrations: idempotent, quoted names, pinned checksums, safe when instances start together."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import jwt
import pytest

from postgrest_auth.migrate import MigrationError, load_migrations, migrate, rendered_sql

from .support import SECRET, Service, body_text, make_settings, migrated, run_sql


def recorded(dsn: str, schema: str = "auth") -> list[tuple[Any, ...]]:
    quoted = '"' + schema.replace('"', '""') + '"'
    rows = run_sql(dsn, f"select name, checksum, applied_at from {quoted}.schema_migrations")
    return sorted(tuple(r) for r in rows)


def test_migrate_twice_changes_nothing(dsn):
    settings = make_settings(dsn)
    names = [m.name for m in load_migrations(settings)]
    assert migrated(dsn, settings) == names
    assert names[0].startswith("001_") and names[-1].startswith("R_")
    before = recorded(dsn)
    assert [r[0] for r in before] == sorted(names)
    assert migrated(dsn, settings) == []
    assert recorded(dsn) == before


def test_changed_applied_file_is_an_error(dsn):
    settings = make_settings(dsn)
    migrated(dsn, settings)
    run_sql(dsn, "update auth.schema_migrations set checksum = 'edited' where name like '001_%'")
    with pytest.raises(MigrationError, match=r"001_\w+\.sql was changed"):
        migrated(dsn, settings)
    # The lock was released: the next attempt fails the same way instead of hanging.
    with pytest.raises(MigrationError):
        migrated(dsn, settings)


def test_repeatable_file_runs_again_when_its_rendering_changes(dsn):
    migrated(dsn, make_settings(dsn))
    changed = make_settings(dsn, cookie={"name": "other_cookie", "secure": False})
    assert migrated(dsn, changed) == ["R_pre_request.sql"]
    assert migrated(dsn, changed) == []
    source = run_sql(dsn, "select prosrc from pg_proc where proname = 'authenticate'")[0][0]
    assert "other_cookie" in source


def test_concurrent_migrations_both_succeed(dsn):
    settings = make_settings(dsn)

    async def go() -> tuple[list[str], list[str]]:
        first, second = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
        try:
            return await asyncio.gather(migrate(first, settings), migrate(second, settings))
        finally:
            await first.close()
            await second.close()

    a, b = asyncio.run(go())
    names = [m.name for m in load_migrations(settings)]
    assert sorted(a + b) == sorted(names)  # each file applied by exactly one of them
    assert [r[0] for r in recorded(dsn)] == sorted(names)


def test_rendered_sql_quotes_names(dsn):
    settings = make_settings(dsn, db={"schema": "my auth", "table": 'Users"x'})
    sql = rendered_sql(settings)
    assert sql.startswith("begin;") and sql.rstrip().endswith("commit;")
    assert '"my auth"."Users""x"' in sql
    assert "{{" not in sql


def test_odd_schema_and_table_names_work_end_to_end(dsn, smtp):
    schema, table = "my auth", 'Users"x'
    settings = make_settings(dsn, smtp.port, db={"schema": schema, "table": table})
    service = Service(settings).start()
    try:
        with service.client() as client:
            r = client.post(
                "/users",
                json={
                    "username": "alice",
                    "password": "correct horse",
                    "email": "a@example.com",
                },
            )
            assert r.status_code == 201, r.text
            token = r.json()["access_token"]
            assert (
                client.post(
                    "/users", json={"username": "ALICE", "password": "correct horse"}
                ).status_code
                == 409
            )
            assert (
                client.post(
                    "/users",
                    json={
                        "username": "bob",
                        "password": "correct horse",
                        "email": "A@example.com",
                    },
                ).json()["code"]
                == "email_taken"
            )
            login = {"username": "alice", "password": "correct horse"}
            assert client.post("/refresh_token", json=login).status_code == 200
            headers = {"Authorization": f"Bearer {token}"}
            assert client.get("/user", headers=headers).json()["username"] == "alice"
            assert client.post("/forgot_password", json={"username": "alice"}).status_code == 200
            mails = smtp.mailbox.wait_for("a@example.com", count=2)
            assert any("alice" in body_text(m) for m in mails)
    finally:
        service.stop()
    rows = run_sql(dsn, 'select username, email from "my auth"."Users""x"')
    assert [tuple(r) for r in rows] == [("alice", "a@example.com")]
    assert not run_sql(dsn, "select from pg_namespace where nspname = 'auth'")
    assert migrated(dsn, settings) == []
    # The pre-request functions were rendered with the same names and find the user.
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="authenticated")
    assert pre_request_problem(dsn, schema, claims) is None
    # A token naming a session is judged by it; one naming none, by the user's count.
    assert pre_request_problem(dsn, schema, {**claims, "count": 5}) is None
    assert pre_request_problem(dsn, schema, {**claims, "sid": str(uuid.uuid4())}) == "session_ended"
    sessionless = {k: v for k, v in claims.items() if k != "sid"}
    assert pre_request_problem(dsn, schema, sessionless) is None
    assert pre_request_problem(dsn, schema, {**sessionless, "count": 5}) == "token_revoked"


def pre_request_problem(dsn: str, schema: str, claims: dict[str, Any]) -> str | None:
    """Run the pre-request as PostgREST would; the refusal's code, or None when it passes."""

    async def go() -> str | None:
        conn = await asyncpg.connect(dsn)
        try:
            async with conn.transaction():
                await conn.execute(
                    "select set_config('request.jwt.claims', $1, true)", json.dumps(claims)
                )
                quoted = '"' + schema.replace('"', '""') + '"'
                try:
                    await conn.execute(f"select {quoted}.check_token_count()")
                except asyncpg.PostgresError as exc:
                    return json.loads(exc.args[0])["code"]
            return None
        finally:
            await conn.close()

    return asyncio.run(go())
