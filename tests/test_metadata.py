"""user_metadata and app_metadata: set by the user (PUT /auth/user) and by the operator (the
command line), seen by row-level-security policies through the real PostgREST in both modes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .profile_support import Mode, Stack, stack_builder, unique_username
from .support import NODE_SCHEMA, Service, make_settings, run_script, run_sql, sign_up
from .test_cli import config, one_line, run_cli

LIMIT = 16 * 1024
EMAIL_PROVIDER = {"provider": "email", "providers": ["email"]}


@pytest.fixture
def make_stack(dsn, smtp, load_todos, postgrest_factory) -> Iterator[Callable[..., Stack]]:  # type: ignore[no-untyped-def]
    build, made = stack_builder(dsn, smtp.port, load_todos, postgrest_factory)
    yield build
    for stack in made:
        stack.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cli_app_metadata(tmp_path: Path, dsn: str, user: str, change: str) -> dict[str, Any]:
    result = run_cli("users", "app-metadata", user, change, "--config", str(config(tmp_path, dsn)))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def stored(dsn: str, username: str) -> tuple[Any, Any]:
    row = run_sql(
        dsn,
        "select user_metadata::text, app_metadata::text from auth.users where username = $1",
        username,
    )[0]
    return json.loads(row[0]), json.loads(row[1])


def metadata_events(dsn: str) -> list[dict[str, Any]]:
    rows = run_sql(
        dsn, "select detail::text from auth.audit_log where event = 'metadata_changed' order by id"
    )
    return [json.loads(row[0]) for row in rows]


# -- through PostgREST, in both modes -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["bearer", "cookie"])
def test_policies_see_the_metadata(
    make_stack: Callable[..., Stack], mode: Mode, tmp_path: Path, dsn: str
) -> None:
    stack = make_stack(mode)
    alice = stack.sign_up(email="alice@example.com")
    claims = alice.claims()
    assert claims["user_metadata"] == {}
    assert claims["app_metadata"] == EMAIL_PROVIDER  # every new account, as GoTrue has it
    assert alice.notes() == []

    response = alice.auth("PUT", "/user", json={"user_metadata": {"team": "red", "x": 1}})
    assert response.status_code == 200, response.text
    assert response.json()["user_metadata"] == {"team": "red", "x": 1}
    if mode == "bearer":
        # The token in hand keeps its claims (GoTrue's behaviour): the next one has the change.
        assert alice.notes() == []
        alice.refresh()
    # Cookie mode: the pre-request reads the row, so the very next request sees it.
    assert alice.notes() == ["red note"]
    assert alice.claims()["user_metadata"] == {"team": "red", "x": 1}

    response = alice.auth("PATCH", "/user", json={"user_metadata": {"team": "blue"}})
    assert response.status_code == 200, response.text
    if mode == "bearer":
        alice.refresh()
    assert alice.notes() == ["blue note"]

    # app_metadata is the operator's: the command line changes it, the next token carries it.
    shown = cli_app_metadata(tmp_path, dsn, alice.username, '{"plan": "pro"}')
    assert shown["app_metadata"] == {**EMAIL_PROVIDER, "plan": "pro"}
    if mode == "bearer":
        assert alice.notes() == ["blue note"]
        alice.refresh()
    assert alice.notes() == ["blue note", "pro note"]
    assert alice.claims()["app_metadata"] == {**EMAIL_PROVIDER, "plan": "pro"}

    # Another user sees neither.
    bob = stack.sign_up()
    assert bob.notes() == []


# -- the operation, through the original API -----------------------------------------------------


def put(client: httpx.Client, token: str, body: Any) -> httpx.Response:
    return client.put("/user", json=body, headers=bearer(token))


def test_merge_replaces_given_keys_and_null_removes(client: httpx.Client, dsn: str) -> None:
    token = sign_up(client, "alice", "alice@example.com")["access_token"]
    user = client.get("/user", headers=bearer(token)).json()
    assert user["user_metadata"] == {} and user["app_metadata"] == EMAIL_PROVIDER
    assert "email_confirmed_at" in user and "password" not in user

    first = {"name": "Alice", "prefs": {"theme": "dark", "lang": "en"}, "tags": [1, 2]}
    assert put(client, token, {"user_metadata": first}).status_code == 200
    r = put(client, token, {"user_metadata": {"prefs": {"theme": "light"}, "tags": None, "n": 0}})
    assert r.status_code == 200, r.text
    expected = {"name": "Alice", "prefs": {"theme": "light"}, "n": 0}  # top-level keys only
    assert r.json()["user_metadata"] == expected
    assert r.json()["id"] == user["id"] and r.json()["session_id"] == user["session_id"]
    assert client.get("/user", headers=bearer(token)).json()["user_metadata"] == expected
    assert stored(dsn, "alice") == (expected, EMAIL_PROVIDER)
    # Removing a key that is not there, or sending nothing to change, changes nothing.
    assert put(client, token, {"user_metadata": {"gone": None}}).json()["user_metadata"] == expected
    assert put(client, token, {"user_metadata": {}}).json()["user_metadata"] == expected

    # The audit trail names the keys, never the values.
    events = metadata_events(dsn)
    assert events[1] == {"column": "user_metadata", "keys": ["n", "prefs"], "removed": ["tags"]}
    assert "Alice" not in json.dumps(events) and "light" not in json.dumps(events)


def test_size_limit_is_16_kib_after_the_merge(client: httpx.Client, dsn: str) -> None:
    token = sign_up(client, "alice")["access_token"]
    # {"k": "xxx…"} is 9 bytes plus the x's, as PostgreSQL prints it.
    exactly = {"k": "x" * (LIMIT - 9)}
    assert put(client, token, {"user_metadata": exactly}).status_code == 200
    assert run_sql(dsn, "select octet_length(user_metadata::text) from auth.users")[0][0] == LIMIT
    events = len(metadata_events(dsn))

    for change in ({"k": "x" * (LIMIT - 8)}, {"j": 1}):  # too large itself; too large merged
        r = put(client, token, {"user_metadata": change})
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "metadata_too_large"
        assert r.json()["errors"][0]["field"] == "user_metadata"
    assert stored(dsn, "alice")[0] == exactly
    assert len(metadata_events(dsn)) == events

    # Multi-byte characters count as bytes: 2 each for é.
    r = put(client, token, {"user_metadata": {"k": "é" * ((LIMIT - 9) // 2 + 1)}})
    assert r.status_code == 400 and r.json()["code"] == "metadata_too_large", r.text
    # Removing a key makes room again.
    r = put(client, token, {"user_metadata": {"k": None, "j": 1}})
    assert r.status_code == 200 and r.json()["user_metadata"] == {"j": 1}, r.text


@pytest.mark.parametrize("value", [[1, 2], "team", 3, None, True])
def test_metadata_must_be_an_object(client: httpx.Client, dsn: str, value: Any) -> None:
    token = sign_up(client, "alice")["access_token"]
    put(client, token, {"user_metadata": {"kept": True}})
    r = put(client, token, {"user_metadata": value})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "validation_failed"
    assert r.json()["errors"][0]["field"] == "user_metadata"
    assert stored(dsn, "alice")[0] == {"kept": True}


def test_update_needs_a_signed_in_caller_and_the_field(client: httpx.Client) -> None:
    r = client.put("/user", json={"user_metadata": {"team": "red"}})
    assert r.status_code == 401 and r.json()["code"] == "missing_credentials", r.text
    token = sign_up(client, "alice")["access_token"]
    r = client.put("/user", json={}, headers=bearer(token))
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "user_metadata", r.text
    # Users cannot touch app_metadata: the field is not theirs, and is ignored.
    r = put(client, token, {"user_metadata": {}, "app_metadata": {"role": "admin"}})
    assert r.status_code == 200 and r.json()["app_metadata"] == EMAIL_PROVIDER, r.text


def test_existing_accounts_get_the_email_provider(dsn: str, smtp: Any) -> None:
    """The migration backfills accounts adopted from the Node original."""
    run_script(dsn, NODE_SCHEMA)
    run_sql(
        dsn,
        "insert into auth.users (username, username_lowercase, email, password)"
        " values ('old', 'old', 'old@example.com', 'x')",
    )
    service = Service(make_settings(dsn, smtp.port)).start()
    try:
        assert stored(dsn, "old")[1] == EMAIL_PROVIDER
        run_sql(dsn, 'update auth.users set app_metadata = \'{"provider": "github"}\'')
        with service.client() as http:
            sign_up(http, "new")
        assert stored(dsn, "old")[1] == {"provider": "github"}  # set ones are left alone
        assert stored(dsn, "new")[1] == EMAIL_PROVIDER
    finally:
        service.stop()


# -- the command line ---------------------------------------------------------------------------


def test_cli_shows_and_changes_app_metadata(client: httpx.Client, dsn: str, tmp_path: Path) -> None:
    username = unique_username()
    sign_up(client, username, f"{username}@example.com")
    path = str(config(tmp_path, dsn))
    uid = run_sql(dsn, "select uid::text from auth.users")[0][0]

    shows = []
    for reference in (username.upper(), f"{username}@EXAMPLE.com", uid):
        result = run_cli("users", "show", reference, "--config", path)
        assert result.returncode == 0, result.stderr
        shows.append(json.loads(result.stdout))
    assert shows[0] == shows[1] == shows[2]
    shown = shows[0]
    assert shown["id"] == uid and shown["username"] == username
    assert shown["app_metadata"] == EMAIL_PROVIDER and shown["user_metadata"] == {}
    hash_ = run_sql(dsn, "select password from auth.users")[0][0]
    assert "password" not in shown and hash_ not in result.stdout
    assert "token_count" not in shown

    changed = cli_app_metadata(tmp_path, dsn, username, '{"plan": "pro", "roles": ["a"]}')
    assert changed["app_metadata"] == {**EMAIL_PROVIDER, "plan": "pro", "roles": ["a"]}
    changed = cli_app_metadata(tmp_path, dsn, uid, '{"roles": null}')
    assert changed["app_metadata"] == {**EMAIL_PROVIDER, "plan": "pro"}
    assert stored(dsn, username)[1] == {**EMAIL_PROVIDER, "plan": "pro"}
    assert metadata_events(dsn)[-1] == {
        "column": "app_metadata",
        "keys": [],
        "removed": ["roles"],
        "by": "cli",
    }


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("app-metadata", "nobody", "{}"), "no account"),
        (("show", "nobody"), "no account"),
        (("app-metadata", "alice", "{not json"), "not JSON"),
        (("app-metadata", "alice", "[1]"), "JSON object"),
        (("app-metadata", "alice"), "JSON object"),
        (("app-metadata", "alice", json.dumps({"k": "x" * LIMIT})), "16384 bytes"),
        (("show", "alice", "{}"), "no JSON"),
    ],
)
def test_cli_refusals_are_one_line(
    client: httpx.Client, dsn: str, tmp_path: Path, args: tuple[str, ...], named: str
) -> None:
    sign_up(client, "alice")
    before = stored(dsn, "alice")
    result = run_cli("users", *args, "--config", str(config(tmp_path, dsn)))
    assert result.returncode != 0
    assert named in one_line(result.stderr)
    assert result.stdout == ""
    assert stored(dsn, "alice") == before
