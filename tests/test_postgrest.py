"""End to end beside the real PostgREST 12: roles, row-level security and the pre-request.

Each test runs the real service, loads examples/todos.sql and starts the real PostgREST binary
with `db-pre-request = auth.check_token_count`, then talks to both over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from postgrest_auth.config import load_settings

from .support import (
    SECRET,
    PostgREST,
    Service,
    SmtpServer,
    body_text,
    free_port,
    make_settings,
    password_change,
    postgrest_binary,
    run_script,
    run_sql,
    wait_until,
)

PASSWORD = "correct horse battery"
ROOT = Path(__file__).parent.parent

# Answers the role a request really runs as (api.me only echoes the claims).
WHOAMI = """
create function api.whoami() returns text language sql stable as $$ select current_user::text $$;
grant execute on function api.whoami() to web_anon, normal_user;
"""


@dataclass
class Stack:
    """The service, the to-do schema and PostgREST on one fresh database."""

    service: Service
    auth: httpx.Client
    rest: httpx.Client

    def sign_up(self, username: str | None = None, email: str | None = None) -> dict[str, Any]:
        username = username or unique_username()
        body: dict[str, Any] = {"username": username, "password": PASSWORD}
        if email:
            body["email"] = email
        r = self.auth.post("/users", json=body)
        assert r.status_code == 201, r.text
        return {"username": username, **r.json()}

    def add_todo(self, token: str, description: str, public: bool = False) -> dict[str, Any]:
        r = self.rest.post(
            "/todos",
            json={"description": description, "public": public},
            headers={**bearer(token), "Prefer": "return=representation"},
        )
        assert r.status_code == 201, r.text
        return r.json()[0]

    def todos(self, token: str | None = None) -> list[str]:
        r = self.rest.get("/todos?order=id", headers=bearer(token))
        assert r.status_code == 200, r.text
        return [row["description"] for row in r.json()]

    def whoami(self, token: str | None = None) -> str:
        r = self.rest.post("/rpc/whoami", headers=bearer(token))
        assert r.status_code == 200, r.text
        return r.json()


def unique_username() -> str:
    """Roles are cluster-wide and outlive a test's database: per-user roles need fresh names."""
    return "u" + uuid.uuid4().hex[:12]


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def assert_invalid_token(r: httpx.Response, code: str | None = None) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"'), r.headers
    if code is not None:
        assert r.json()["code"] == code, r.text


@pytest.fixture
def make_stack(dsn, smtp: SmtpServer, load_todos, postgrest_factory) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    services: list[Service] = []
    clients: list[httpx.Client] = []

    def build(**overrides: Any) -> Stack:
        settings = make_settings(dsn, smtp.port, **overrides)
        service = Service(settings).start()  # applies the migrations
        services.append(service)
        load_todos()
        run_script(dsn, WHOAMI)
        rest = postgrest_factory(settings, pre_request="check_token_count")
        clients.extend([service.client(), rest.client()])
        return Stack(service, clients[-2], clients[-1])

    yield build
    for http in clients:
        http.close()
    for service in services:
        service.stop()


@pytest.fixture
def stack(make_stack) -> Stack:  # type: ignore[no-untyped-def]
    return make_stack()


def test_anonymous_requests_run_as_web_anon(stack: Stack) -> None:
    alice = stack.sign_up()
    stack.add_todo(alice["access_token"], "shared", public=True)
    stack.add_todo(alice["access_token"], "secret")

    assert stack.whoami() == "web_anon"
    assert stack.todos() == ["shared"]
    r = stack.rest.post("/todos", json={"description": "graffiti"})
    assert r.status_code in (401, 403), r.text
    assert stack.todos(alice["access_token"]) == ["shared", "secret"]


def test_fresh_token_runs_as_normal_user_and_sees_own_rows(stack: Stack) -> None:
    alice = stack.sign_up()
    token = alice["access_token"]

    assert stack.whoami(token) == "normal_user"
    r = stack.rest.get("/rpc/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["username"] == alice["username"]
    row = stack.add_todo(token, "mine")
    assert (
        row["user_id"]
        == jwt.decode(token, SECRET, algorithms=["HS256"], audience="authenticated")["sub"]
    )
    assert stack.todos(token) == ["mine"]


def test_two_users_are_isolated_by_row_level_security(stack: Stack) -> None:
    alice, bob = stack.sign_up(), stack.sign_up()
    stack.add_todo(alice["access_token"], "alice private")
    stack.add_todo(alice["access_token"], "alice public", public=True)
    bobs = stack.add_todo(bob["access_token"], "bob private")

    assert stack.todos(alice["access_token"]) == ["alice private", "alice public"]
    assert stack.todos(bob["access_token"]) == ["alice public", "bob private"]
    # Someone else's row can be neither changed nor deleted: RLS hides it from the statement.
    r = stack.rest.patch(
        f"/todos?id=eq.{bobs['id']}",
        json={"done": True},
        headers={**bearer(alice["access_token"]), "Prefer": "return=representation"},
    )
    assert (r.status_code, r.json()) == (200, []), r.text
    r = stack.rest.delete(f"/todos?id=eq.{bobs['id']}", headers=bearer(alice["access_token"]))
    assert r.status_code == 204, r.text
    assert stack.todos(bob["access_token"]) == ["alice public", "bob private"]
    # Nor can a row be written in someone else's name.
    r = stack.rest.post(
        "/todos",
        json={"description": "forged", "user_id": bobs["user_id"]},
        headers=bearer(alice["access_token"]),
    )
    assert r.status_code in (400, 401, 403), r.text


def test_old_token_dies_after_change_password(stack: Stack) -> None:
    alice = stack.sign_up()
    old = alice["access_token"]
    stack.add_todo(old, "before")

    r = stack.auth.post(
        "/change_password",
        json=password_change(alice["username"], PASSWORD, "a new password"),
    )
    assert r.status_code == 200, r.text
    new = r.json()["access_token"]

    assert_invalid_token(stack.rest.get("/todos", headers=bearer(old)), "session_ended")
    assert_invalid_token(stack.rest.post("/rpc/whoami", headers=bearer(old)), "session_ended")
    assert stack.todos(new) == ["before"]
    assert stack.whoami(new) == "normal_user"


def test_reset_token_never_reads_private_data(stack: Stack, smtp: SmtpServer) -> None:
    address = f"{uuid.uuid4().hex[:8]}@example.com"
    alice = stack.sign_up(email=address)
    stack.add_todo(alice["access_token"], "private")
    r = stack.auth.post("/forgot_password", json={"username": alice["username"]})
    assert r.status_code == 200, r.text
    mail = next(m for m in smtp.mailbox.wait_for(address, 2) if "reset" in m["Subject"].lower())
    found = re.search(r"[\w-]+\.[\w-]+\.[\w-]+", body_text(mail))
    assert found, "no token in the reset mail"
    reset = found.group(0)
    claims = jwt.decode(reset, SECRET, algorithms=["HS256"])
    assert claims["typ"] == "reset" and "role" not in claims

    for r in (
        stack.rest.get("/todos", headers=bearer(reset)),
        stack.rest.get("/users", headers=bearer(reset)),
        stack.rest.post("/rpc/whoami", headers=bearer(reset)),
    ):
        assert_invalid_token(r, "wrong_token_type")
        assert "private" not in r.text


def test_token_signed_with_another_secret_is_refused(stack: Stack) -> None:
    alice = stack.sign_up()
    claims = jwt.decode(
        alice["access_token"], SECRET, algorithms=["HS256"], audience="authenticated"
    )
    forged = jwt.encode(claims, "another-secret-" + secrets.token_urlsafe(32), algorithm="HS256")

    r = stack.rest.get("/todos", headers=bearer(forged))
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith("Bearer"), r.headers
    assert stack.todos(alice["access_token"]) == []


def test_logout_kills_the_session_token(stack: Stack) -> None:
    alice = stack.sign_up()
    token = alice["access_token"]
    assert stack.todos(token) == []

    r = stack.auth.post("/logout", json={}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert_invalid_token(stack.rest.get("/todos", headers=bearer(token)), "session_ended")


def test_per_user_roles_work_without_manual_grants(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack: Stack = make_stack(roles={"per_user": True})
    alice = stack.sign_up("Al" + unique_username())
    bob = stack.sign_up()
    claims = jwt.decode(
        alice["access_token"], SECRET, algorithms=["HS256"], audience="authenticated"
    )
    assert claims["role"] == alice["username"].lower()

    assert stack.whoami(alice["access_token"]) == alice["username"].lower()
    assert stack.whoami(bob["access_token"]) == bob["username"]
    stack.add_todo(alice["access_token"], "alice private")
    stack.add_todo(bob["access_token"], "bob public", public=True)
    assert stack.todos(alice["access_token"]) == ["alice private", "bob public"]
    assert stack.todos(bob["access_token"]) == ["bob public"]
    assert stack.todos() == ["bob public"]


def test_legacy_claim_settings_are_checked(stack: Stack, dsn: str) -> None:
    """PostgREST before 9 set request.jwt.claim.<name>; check_token_count still reads those."""
    alice = stack.sign_up()
    r = stack.auth.post(
        "/change_password",
        json=password_change(alice["username"], PASSWORD, "a new password"),
    )
    assert r.status_code == 200, r.text
    user_uid, count = run_sql(
        dsn, "select uid::text, token_count from auth.users where username = $1", alice["username"]
    )[0]
    assert count == 1

    async def check(claimed_count: int) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            async with conn.transaction():
                await conn.execute("set local role normal_user")
                await conn.execute(
                    "select set_config('request.jwt.claims', '', true),"
                    " set_config('request.jwt.claim.sub', $1, true),"
                    " set_config('request.jwt.claim.count', $2, true)",
                    user_uid,
                    str(claimed_count),
                )
                await conn.execute("select auth.check_token_count()")
        finally:
            await conn.close()

    with pytest.raises(asyncpg.PostgresError) as refused:
        asyncio.run(check(count - 1))
    assert refused.value.sqlstate == "PGRST"
    assert "token_revoked" in str(refused.value)
    asyncio.run(check(count))


def conf_values(text: str) -> dict[str, str]:
    """`key = "value"` lines of a PostgREST configuration file (comments skipped)."""
    found = re.findall(r'^([a-z-]+)\s*=\s*"?(.*?)"?\s*$', text, flags=re.MULTILINE)
    return dict(found)


def test_postgrest_conf_example_matches_and_runs(stack: Stack, dsn: str, tmp_path: Path) -> None:
    """postgrest.conf.example agrees with examples/postgrest-auth.json and runs as it is."""
    text = (ROOT / "postgrest.conf.example").read_text()
    values = conf_values(text)
    example = load_settings(ROOT / "examples" / "postgrest-auth.json", {}, environ=False)
    assert example.secret is not None
    assert values["jwt-secret"] == example.secret.get_secret_value()
    assert values["db-anon-role"] == example.roles.anonymous
    assert values["db-pre-request"] == f"{example.db.schema_}.check_token_count"
    assert values["db-uri"].startswith(f"postgres://{example.roles.authenticator}:")
    conn = example.db.connection
    assert values["db-uri"].endswith(f"@{conn.host}:{conn.port}/{conn.database}")

    # The same file, pointed at this test's database and secret.
    authenticator = PostgREST(dsn, stack.service.settings).env["PGRST_DB_URI"]
    port = free_port()
    substitutes = {"db-uri": authenticator, "jwt-secret": SECRET, "server-port": str(port)}
    for key, value in substitutes.items():
        text = re.sub(rf"^{key} = .*$", f'{key} = "{value}"', text, count=1, flags=re.MULTILINE)
    conf = tmp_path / "postgrest.conf"
    conf.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGRST_")}
    process = subprocess.Popen(
        [postgrest_binary(), str(conf)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        rest = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

        def ready() -> bool:
            assert process.poll() is None, process.stdout.read().decode(errors="replace")  # type: ignore[union-attr]
            try:
                return rest.get("/").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=30, interval=0.1)
        alice = stack.sign_up()
        assert rest.post("/rpc/whoami").json() == "web_anon"
        assert (
            rest.post("/rpc/whoami", headers=bearer(alice["access_token"])).json() == "normal_user"
        )
        r = stack.auth.post("/logout", json={}, headers=bearer(alice["access_token"]))
        assert r.status_code == 200, r.text
        assert_invalid_token(
            rest.get("/todos", headers=bearer(alice["access_token"])), "session_ended"
        )
        rest.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
