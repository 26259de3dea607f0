"""DELETE /auth/user: the account, its sessions, its unsent mail and its compat-mode role go
at once; its tokens die at the real PostgREST; the old address is told over real SMTP; the
audit trail keeps the id."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from .profile_support import PASSWORD, Person, Stack, stack_builder, unique_username
from .support import SmtpServer, body_text, run_sql, sign_up, wait_until


@pytest.fixture
def make_stack(dsn, smtp, load_todos, postgrest_factory) -> Iterator[Callable[..., Stack]]:  # type: ignore[no-untyped-def]
    build, made = stack_builder(dsn, smtp.port, load_todos, postgrest_factory)
    yield build
    for stack in made:
        stack.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_id(dsn: str, username: str) -> int | None:
    rows = run_sql(dsn, "select id from auth.users where username = $1", username)
    return rows[0][0] if rows else None


def queue_later(dsn: str, recipient: str) -> None:
    """A mail the worker will not take during the test: still pending at the deletion."""
    run_sql(
        dsn,
        "insert into auth.outbox (kind, recipient, subject, body_text, next_attempt_at)"
        " values ('welcome', $1, 'later', 'a link', now() + interval '1 hour')",
        recipient,
    )


def unsent_kinds(dsn: str, recipient: str) -> list[str]:
    rows = run_sql(
        dsn,
        "select kind from auth.outbox where recipient = $1 and sent_at is null order by id",
        recipient,
    )
    return [row[0] for row in rows]


def age_sessions(dsn: str, uid: int, minutes: int) -> None:
    run_sql(
        dsn,
        "update auth.sessions set created_at = now() - make_interval(mins => $2)"
        " where user_id = $1",
        uid,
        minutes,
    )


def deletion_notice(smtp: SmtpServer, address: str) -> Any:
    def notices() -> list[Any]:
        return [m for m in smtp.mailbox.to(address) if "was deleted" in m["Subject"]]

    return wait_until(notices)[0]


def delete(person: Person, password: str | None = None) -> httpx.Response:
    body = {} if password is None else {"password": password}
    return person.auth("DELETE", "/user", json=body)


def test_delete_with_password_removes_everything_but_the_audit(
    make_stack: Callable[..., Stack], dsn: str, smtp: SmtpServer
) -> None:
    stack = make_stack("bearer")
    alice = stack.sign_up(email="alice@example.com")
    bob = stack.sign_up(email="bob@example.com")
    uid = user_id(dsn, alice.username)
    todo = alice.rest("POST", "/todos", json={"description": "mine"})
    assert todo.status_code == 201, todo.text
    other_device = alice.http.post(
        stack.service.base + "/login", json={"username": alice.username, "password": PASSWORD}
    ).json()
    queue_later(dsn, "alice@example.com")
    queue_later(dsn, "bob@example.com")
    age_sessions(dsn, uid, 60)  # the password is proof enough at any age
    token, refresh_token = alice.access_token, alice.refresh_token

    response = delete(alice, PASSWORD)
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert "set-cookie" not in response.headers  # bearer mode: no cookie to clear

    assert user_id(dsn, alice.username) is None
    for table in ("sessions", "one_time_tokens"):
        assert run_sql(dsn, f"select count(*) from auth.{table} where user_id = $1", uid)[0][0] == 0
    assert run_sql(dsn, "select count(*) from app.todos")[0][0] == 0  # cascade of the example
    # Alice's unsent mail is gone but for the notice; Bob's stays.
    assert set(unsent_kinds(dsn, "alice@example.com")) <= {"account_deleted"}
    assert "welcome" in unsent_kinds(dsn, "bob@example.com")
    events = run_sql(
        dsn,
        "select detail::text from auth.audit_log where event = 'account_deleted' and user_id = $1",
        uid,
    )
    assert [json.loads(row[0]) for row in events] == [{}]

    # Every token of the account is dead, at PostgREST and at the service.
    for dead in (token, other_device["access_token"]):
        r = alice.http.get(stack.postgrest.url + "/todos", headers=bearer(dead))
        assert r.status_code == 401 and r.json()["code"] == "session_ended", r.text
        assert alice.http.get(stack.service.base + "/user", headers=bearer(dead)).status_code == 401
    r = alice.http.post(
        stack.service.base + "/refresh_token", json={"refresh_token": refresh_token}
    )
    assert r.status_code == 401, r.text
    assert bob.notes() == []  # others carry on
    assert bob.auth("GET", "/user").status_code == 200

    notice = deletion_notice(smtp, "alice@example.com")
    assert alice.username in body_text(notice)
    # The name is free again.
    again = stack.sign_up(alice.username, "alice@example.com")
    assert again.auth("GET", "/user").json()["username"] == alice.username


@pytest.mark.parametrize("mode", ["bearer", "cookie"])
def test_delete_without_password_within_five_minutes_of_signing_in(
    make_stack: Callable[..., Stack], dsn: str, smtp: SmtpServer, mode: str
) -> None:
    stack = make_stack(mode)
    alice = stack.sign_up(email="alice@example.com")
    uid = user_id(dsn, alice.username)
    age_sessions(dsn, uid, 4)
    cookie = alice.http.cookies.get("session_token")
    assert (cookie is not None) == (mode == "cookie")

    response = delete(alice)
    assert response.status_code == 204, response.text
    assert user_id(dsn, alice.username) is None
    if mode == "cookie":
        assert response.headers["set-cookie"].startswith('session_token="";')
        assert alice.http.cookies.get("session_token") is None
        # The old cookie is nobody's now: anonymous at PostgREST, refused at the service.
        stale = httpx.Client(cookies={"session_token": cookie}, timeout=30)
        try:
            r = stale.post(stack.postgrest.url + "/rpc/claims")
            assert r.status_code == 200 and "sub" not in r.json(), r.text
            assert r.json().get("role") == "web_anon"
            assert stale.get(stack.service.base + "/user").status_code == 401
        finally:
            stale.close()
    else:
        r = alice.rest("GET", "/todos")
        assert r.status_code == 401 and r.json()["code"] == "session_ended", r.text
    deletion_notice(smtp, "alice@example.com")


@pytest.mark.parametrize("mode", ["bearer", "cookie"])
def test_an_older_session_needs_the_password(
    make_stack: Callable[..., Stack], dsn: str, mode: str
) -> None:
    stack = make_stack(mode)
    alice = stack.sign_up(email="alice@example.com")
    uid = user_id(dsn, alice.username)
    age_sessions(dsn, uid, 6)
    queue_later(dsn, "alice@example.com")

    response = delete(alice)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "reauthentication_needed"
    response = delete(alice, "not the password")
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "invalid_credentials"

    # Nothing happened.
    assert user_id(dsn, alice.username) == uid
    assert alice.notes() == []  # the session still works at PostgREST
    assert alice.auth("GET", "/user").status_code == 200
    assert unsent_kinds(dsn, "alice@example.com")[-1] == "welcome"
    events = run_sql(dsn, "select event from auth.audit_log where user_id = $1", uid)
    assert "account_deleted" not in [row[0] for row in events]
    assert "sign_in_failed" in [row[0] for row in events]

    # A fresh sign-in is proof again.
    relogin = alice.http.post(
        stack.service.base + "/login", json={"username": alice.username, "password": PASSWORD}
    )
    alice.keep(relogin)
    assert delete(alice).status_code == 204
    assert user_id(dsn, alice.username) is None


def test_delete_needs_a_signed_in_caller(client: httpx.Client, dsn: str) -> None:
    sign_up(client, "alice")
    r = client.request("DELETE", "/user", json={"password": "correct horse"})
    assert r.status_code == 401 and r.json()["code"] == "missing_credentials", r.text
    assert user_id(dsn, "alice") is not None


def test_an_account_other_data_refers_to_is_kept(client: httpx.Client, dsn: str) -> None:
    """An application table without `on delete cascade` keeps the account: 409, no change."""
    token = sign_up(client, "alice", "alice@example.com")["access_token"]
    uid = user_id(dsn, "alice")
    run_sql(dsn, "create table public.orders (user_id integer references auth.users (id))")
    run_sql(dsn, "insert into public.orders values ($1)", uid)
    r = client.request("DELETE", "/user", json={"password": "correct horse"}, headers=bearer(token))
    assert r.status_code == 409 and r.json()["code"] == "account_referenced", r.text
    assert user_id(dsn, "alice") == uid
    assert client.get("/user", headers=bearer(token)).status_code == 200
    kinds = run_sql(dsn, "select kind from auth.outbox order by id")
    assert "account_deleted" not in [row[0] for row in kinds]


def roles_named(dsn: str, name: str) -> int:
    return run_sql(dsn, "select count(*) from pg_roles where rolname = $1", name)[0][0]


def test_compat_mode_drops_the_users_own_role(make_stack: Callable[..., Stack], dsn: str) -> None:
    stack = make_stack("bearer", roles={"per_user": True})
    alice = stack.sign_up("Al" + unique_username(), "alice@example.com")
    role = alice.username.lower()
    assert roles_named(dsn, role) == 1
    assert alice.claims()["role"] == role and alice.notes() == []  # PostgREST switches to it
    assert delete(alice, PASSWORD).status_code == 204
    assert roles_named(dsn, role) == 0
    assert user_id(dsn, alice.username) is None
    # PostgREST switches to the token's role before the pre-request can refuse the token: with
    # the role gone, it answers 400 itself. Refused all the same.
    r = alice.rest("GET", "/notes")
    assert r.status_code == 400 and "does not exist" in r.json()["message"], r.text
    r = alice.auth("GET", "/user")
    assert r.status_code == 401 and r.json()["code"] == "token_revoked", r.text


def test_compat_mode_keeps_a_role_that_is_more_than_the_users(
    make_stack: Callable[..., Stack], dsn: str
) -> None:
    """A role the operator gave privileges to (or made a login role) is not only the user's."""
    stack = make_stack("bearer", roles={"per_user": True})
    granted, login = stack.sign_up(email="a@example.com"), stack.sign_up(email="b@example.com")
    run_sql(dsn, f'grant select on app.notes to "{granted.username}"')
    run_sql(dsn, f'alter role "{login.username}" login')
    try:
        for person in (granted, login):
            assert delete(person, PASSWORD).status_code == 204
            assert user_id(dsn, person.username) is None
            assert roles_named(dsn, person.username) == 1
    finally:
        run_sql(dsn, f'revoke select on app.notes from "{granted.username}"')
        for person in (granted, login):
            run_sql(dsn, f'drop role if exists "{person.username}"')
