"""Least privilege: only the roles PostgREST switches to may look into the service's schema.

A role of the same cluster that the configuration does not name (another application's, a
reporting user) gets no usage on the schema, no execute on any of its functions (the pre-request
ones included) and nothing on its tables; the configured roles keep exactly what PostgREST needs
(tests/test_postgrest.py runs the real PostgREST on top of these grants).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from .support import make_settings, migrated, run_script, run_sql

PRE_REQUEST = ("check_token_count()", "authenticate()")
HELPERS = ("jwt()", "uid()", "role()", "email()")


def as_role(dsn: str, role: str) -> str:
    return dsn.replace("postgresql://postgres:@", f"postgresql://{role}:@", 1)


@pytest.fixture
def new_role(dsn: str) -> Iterator[str]:
    """A login role of the cluster that no setting names (roles outlive a test's database)."""
    name = f"stranger_{uuid.uuid4().hex[:8]}"
    run_script(dsn, f'create role "{name}" login')
    try:
        yield name
    finally:
        run_script(dsn, f'drop owned by "{name}"; drop role "{name}"')


def privileges(dsn: str, role: str, schema: str = "auth") -> dict[str, object]:
    """What `role` may do in `schema`: usage, and the functions and relations it may use."""
    usage = run_sql(dsn, "select has_schema_privilege($1, $2, 'usage')", role, schema)[0][0]
    functions = run_sql(
        dsn,
        """select p.oid::regprocedure::text from pg_proc p join pg_namespace n
             on n.oid = p.pronamespace
            where n.nspname = $2 and has_function_privilege($1, p.oid, 'execute')""",
        role,
        schema,
    )
    relations = run_sql(
        dsn,
        """select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = $2 and c.relkind in ('r', 'v', 'm', 'p', 'S', 'f')
              and (case when c.relkind = 'S'
                        then has_sequence_privilege($1, c.oid, 'select,usage,update')
                        else has_table_privilege(
                          $1, c.oid, 'select,insert,update,delete,truncate,references,trigger')
                   end
                   or has_any_column_privilege($1, c.oid, 'select,insert,update,references'))""",
        role,
        schema,
    )
    return {
        "usage": usage,
        "functions": sorted(r[0].removeprefix(f"{schema}.") for r in functions),
        "relations": sorted(r[0] for r in relations),
    }


NOTHING = {"usage": False, "functions": [], "relations": []}


def test_a_role_no_setting_names_gets_nothing(dsn: str, new_role: str) -> None:
    migrated(dsn, make_settings(dsn))
    assert (
        run_sql(
            dsn,
            "select count(*) from pg_proc p join pg_namespace n on n.oid ="
            " p.pronamespace where n.nspname = 'auth'",
        )[0][0]
        > 10
    )
    assert privileges(dsn, new_role) == NOTHING

    async def try_as_stranger() -> list[str]:
        conn = await asyncpg.connect(as_role(dsn, new_role))
        refused = []
        try:
            for sql in (
                "select auth.check_token_count()",
                "select auth.authenticate()",
                "select auth.uid()",
                "select count(*) from auth.users",
                "select count(*) from auth.sessions",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError) as caught:
                    await conn.fetch(sql)
                refused.append(str(caught.value))
        finally:
            await conn.close()
        return refused

    refused = asyncio.run(try_as_stranger())
    assert all("permission denied for schema auth" in message for message in refused), refused


def test_the_configured_roles_keep_what_postgrest_needs(dsn: str) -> None:
    settings = make_settings(dsn)
    migrated(dsn, settings)
    for role in (settings.roles.anonymous, settings.roles.user):
        have = privileges(dsn, role)
        assert have["usage"] is True
        assert set(PRE_REQUEST) | set(HELPERS) <= set(have["functions"]), have
        # the definer helpers the pre-request calls, and nothing that reads or writes tables
        assert not [f for f in have["functions"] if f.startswith(("access_claims", "session_aal"))]
        assert have["relations"] == [], have
    # The authenticator only logs in and switches roles: it needs nothing here itself.
    assert privileges(dsn, settings.roles.authenticator) == NOTHING


def test_an_upgrade_takes_back_what_public_had(dsn: str, new_role: str) -> None:
    """A database migrated before 014: PUBLIC had usage and execute on the pre-request."""
    settings = make_settings(dsn)
    migrated(dsn, settings)
    run_script(
        dsn,
        """grant usage on schema auth to public;
           grant execute on function auth.check_token_count(), auth.authenticate() to public;
           delete from auth.schema_migrations
            where name in ('014_least_privilege.sql', 'R_pre_request.sql');""",
    )
    assert privileges(dsn, new_role)["usage"] is True  # the old state, seen by anyone
    assert migrated(dsn, settings) == ["014_least_privilege.sql", "R_pre_request.sql"]
    assert privileges(dsn, new_role) == NOTHING


def test_other_roles_of_the_authenticator_may_run_the_pre_request(dsn: str) -> None:
    """A service role (or any role PostgREST may switch to) runs the pre-request too."""
    settings = make_settings(dsn)
    role = f"svc_{uuid.uuid4().hex[:8]}"
    run_script(
        dsn,
        f"""create role "{role}" nologin;
            do $$ begin
              if not exists (select from pg_roles where rolname = 'authenticator') then
                create role authenticator noinherit nologin;
              end if;
            end $$;
            grant "{role}" to authenticator;""",
    )
    try:
        migrated(dsn, settings)
        have = privileges(dsn, role)
        assert have["usage"] is True and set(PRE_REQUEST) | set(HELPERS) <= set(have["functions"])
        assert have["functions"] == privileges(dsn, settings.roles.anonymous)["functions"]
        assert have["relations"] == []

        async def pre_request_as_role() -> str:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(f'set role "{role}"')
                await conn.execute("select auth.check_token_count(), auth.authenticate()")
                return await conn.fetchval("select current_user")
            finally:
                await conn.close()

        assert asyncio.run(pre_request_as_role()) == role
    finally:
        run_script(dsn, f'drop owned by "{role}"; drop role "{role}"')


def test_a_role_granted_to_the_authenticator_later_is_reached_by_the_next_migrate(
    dsn: str,
) -> None:
    settings = make_settings(dsn)
    migrated(dsn, settings)
    role = f"svc_{uuid.uuid4().hex[:8]}"
    run_script(dsn, f'create role "{role}" nologin; grant "{role}" to authenticator')
    try:
        assert privileges(dsn, role) == NOTHING  # closed until the operator's step
        assert migrated(dsn, settings) == []  # no file to apply, yet the grants are renewed
        have = privileges(dsn, role)
        assert have["usage"] is True and set(PRE_REQUEST) <= set(have["functions"])
    finally:
        run_script(dsn, f'drop owned by "{role}"; drop role "{role}"')
