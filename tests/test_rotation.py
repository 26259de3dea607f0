"""Rotating refresh tokens: every refresh with the session's opaque token (refresh token or
cookie) answers a new one and retires the old. A retired one presented again within
`sessions.reuse_interval` gets the current tokens (two tabs); later, it ends the whole session,
at the service and at the real PostgREST, with an audit event and no token in it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from .support import SECRET, Service, make_settings, run_sql, wait_until

PASSWORD = "correct horse battery"
COOKIE = "session_token"


def sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def sid(body: dict[str, Any]) -> str:
    return jwt.decode(body["access_token"], SECRET, algorithms=["HS256"], audience="authenticated")[
        "sid"
    ]


def sign_up(client: httpx.Client, username: str = "alice") -> dict[str, Any]:
    response = client.post("/users", json={"username": username, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return response.json()


def refresh(client: httpx.Client, token: str) -> httpx.Response:
    return client.post("/refresh_token", json={"refresh_token": token})


def refreshed(client: httpx.Client, token: str) -> dict[str, Any]:
    response = refresh(client, token)
    assert response.status_code == 200, response.text
    return response.json()


def current_hash(dsn: str) -> bytes:
    (row,) = run_sql(dsn, "select token_hash from auth.sessions")
    return row["token_hash"]


def retired_hashes(dsn: str) -> set[bytes]:
    return {
        r["token_hash"] for r in run_sql(dsn, "select token_hash from auth.refresh_tokens_retired")
    }


def reuse_events(dsn: str) -> list[dict[str, Any]]:
    rows = run_sql(
        dsn, "select detail::text from auth.audit_log where event = $1", "refresh_token_reused"
    )
    return [json.loads(row["detail"]) for row in rows]


def rest_me(rest: Any, access_token: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {access_token}"}
    return httpx.get(rest.url + "/rpc/me", headers=headers, timeout=30)


@pytest.fixture
def short_interval(dsn: str, smtp: Any) -> Iterator[Service]:
    """The service with a reuse interval of one second."""
    running = Service(make_settings(dsn, smtp.port, sessions={"reuse_interval": 1})).start()
    try:
        yield running
    finally:
        running.stop()


# -- rotation -----------------------------------------------------------------------------------


def test_each_refresh_answers_a_new_refresh_token_and_retires_the_old(
    client: httpx.Client, dsn: str
) -> None:
    first = sign_up(client)
    assert current_hash(dsn) == sha256(first["refresh_token"])
    second = refreshed(client, first["refresh_token"])
    third = refreshed(client, second["refresh_token"])
    tokens = [first["refresh_token"], second["refresh_token"], third["refresh_token"]]
    assert len(set(tokens)) == 3 and all(len(t) >= 43 for t in tokens)
    assert sid(first) == sid(second) == sid(third)  # one session, new tokens
    assert current_hash(dsn) == sha256(third["refresh_token"])
    assert retired_hashes(dsn) == {sha256(first["refresh_token"]), sha256(second["refresh_token"])}
    # Only hashes are stored: no token in any column of either table.
    dump = run_sql(
        dsn,
        "select (select json_agg(s)::text from auth.sessions s)"
        " || (select json_agg(r)::text from auth.refresh_tokens_retired r) as text",
    )[0]["text"]
    assert not any(token in dump for token in tokens)


def test_refresh_by_bearer_access_token_does_not_rotate(client: httpx.Client, dsn: str) -> None:
    body = sign_up(client)
    response = client.post(
        "/refresh_token", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert response.status_code == 200, response.text
    assert "refresh_token" not in response.json()
    assert current_hash(dsn) == sha256(body["refresh_token"])
    assert retired_hashes(dsn) == set()
    assert refresh(client, body["refresh_token"]).status_code == 200  # still the current one


def test_a_retired_token_within_the_interval_gets_the_current_tokens(
    client: httpx.Client, dsn: str
) -> None:
    first = sign_up(client)
    second = refreshed(client, first["refresh_token"])
    third = refreshed(client, second["refresh_token"])
    # Two rotations behind, still within the interval (10 s by default): the current token.
    again = refreshed(client, first["refresh_token"])
    assert again["refresh_token"] == third["refresh_token"]
    assert sid(again) == sid(first)
    assert current_hash(dsn) == sha256(third["refresh_token"])  # nothing rotated
    assert len(retired_hashes(dsn)) == 2
    assert reuse_events(dsn) == []


def test_a_signing_key_change_breaks_the_chain_and_the_reuse_ends_the_session(
    service: Service, dsn: str, smtp: Any
) -> None:
    """Successors are derived with the signing key: after a change, a retired token cannot be
    followed to the current one, and is taken for what it looks like, a second holder."""
    with service.client() as client:
        first = sign_up(client)
        refreshed(client, first["refresh_token"])
    other_key = Service(make_settings(dsn, smtp.port, secret="another-" + "k" * 40)).start()
    try:
        with other_key.client() as client:
            reused = refresh(client, first["refresh_token"])
    finally:
        other_key.stop()
    assert reused.status_code == 401 and reused.json()["code"] == "refresh_token_reused"
    assert [e["reason"] for e in reuse_events(dsn)] == ["successor_unknown"]


def test_parallel_refreshes_rotate_once_and_answer_the_same_token(
    service: Service, dsn: str
) -> None:
    """Refreshes queued behind a lock on the session row: the first rotates, the others find
    the token retired a moment ago and get the token it rotated to."""
    with service.client() as client:
        first = sign_up(client)
    parallel = 3  # below the pool's 4 connections
    answers: list[httpx.Response] = []

    def go() -> None:
        with service.client() as client:
            answers.append(refresh(client, first["refresh_token"]))

    async def queued(watcher: asyncpg.Connection) -> bool:
        waiting = await watcher.fetchval(
            "select count(*) from pg_stat_activity"
            " where datname = current_database() and wait_event_type = 'Lock'"
        )
        return waiting == parallel

    async def scenario() -> None:
        holder, watcher = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
        try:
            async with holder.transaction():
                await holder.execute("select 1 from auth.sessions for update")
                threads = [threading.Thread(target=go) for _ in range(parallel)]
                for thread in threads:
                    thread.start()
                for _ in range(500):  # every refresh now waits on the row lock
                    if await queued(watcher):
                        break
                    await asyncio.sleep(0.01)
                else:
                    raise AssertionError("the refreshes did not queue on the session row")
            for thread in threads:
                await asyncio.to_thread(thread.join)
        finally:
            await holder.close()
            await watcher.close()

    asyncio.run(scenario())
    assert [a.status_code for a in answers] == [200] * parallel, [a.text for a in answers]
    new_tokens = {a.json()["refresh_token"] for a in answers}
    assert len(new_tokens) == 1 and first["refresh_token"] not in new_tokens
    assert current_hash(dsn) == sha256(new_tokens.pop())
    assert retired_hashes(dsn) == {sha256(first["refresh_token"])}


def test_parallel_refreshes_over_http_agree(service: Service, dsn: str) -> None:
    """Two tabs refreshing with one token at the same moment: both succeed, one new token."""
    with service.client() as client:
        first = sign_up(client)
    start = threading.Barrier(2)
    answers: list[httpx.Response] = []

    def tab() -> None:
        with service.client() as client:
            start.wait()
            answers.append(refresh(client, first["refresh_token"]))

    threads = [threading.Thread(target=tab) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert answers[0].json()["refresh_token"] == answers[1].json()["refresh_token"]
    assert current_hash(dsn) == sha256(answers[0].json()["refresh_token"])


# -- reuse --------------------------------------------------------------------------------------


def test_reuse_after_the_interval_ends_the_session_everywhere(
    short_interval: Service, dsn: str, load_todos: Any, postgrest_factory: Any
) -> None:
    load_todos()
    rest = postgrest_factory(short_interval.settings, pre_request="check_token_count")
    with short_interval.client(headers={"User-Agent": "thief"}) as client:
        first = sign_up(client)
        bob = sign_up(client, "bob")
        second = refreshed(client, first["refresh_token"])
        assert rest_me(rest, second["access_token"]).status_code == 200
        # Wait until the first token has been retired for longer than the interval.
        wait_until(
            lambda: run_sql(
                dsn,
                "select bool_and(retired_at < now() - interval '1 second') as past"
                " from auth.refresh_tokens_retired",
            )[0]["past"],
            timeout=10,
        )
        reused = refresh(client, first["refresh_token"])
        assert reused.status_code == 401, reused.text
        assert reused.json()["code"] == "refresh_token_reused"
        assert reused.headers["www-authenticate"].startswith("Bearer")
        # The whole session is over: its newest refresh token, and its access tokens at
        # PostgREST on the very next request.
        newest = refresh(client, second["refresh_token"])
        assert newest.status_code == 401 and newest.json()["code"] == "session_ended"
        for access_token in (second["access_token"], first["access_token"]):
            refused = rest_me(rest, access_token)
            assert refused.status_code == 401, refused.text
            assert 'error="invalid_token"' in refused.headers["www-authenticate"]
        assert (
            client.get(
                "/user", headers={"Authorization": f"Bearer {second['access_token']}"}
            ).status_code
            == 401
        )
        # Presented again, the session is merely ended: no second event.
        assert refresh(client, first["refresh_token"]).json()["code"] == "session_ended"
        # Other sessions live on.
        assert rest_me(rest, bob["access_token"]).json()["username"] == "bob"
        assert refreshed(client, bob["refresh_token"])["refresh_token"]

    events = run_sql(
        dsn,
        "select a.user_id, a.user_agent, host(a.address) as address, a.detail,"
        " row_to_json(a)::text as everything from auth.audit_log a"
        " where event = 'refresh_token_reused'",
    )
    assert len(events) == 1
    (event,) = events
    (alice,) = run_sql(dsn, "select id from auth.users where username = 'alice'")
    assert event["user_id"] == alice["id"]
    assert event["user_agent"] == "thief" and event["address"] == "127.0.0.1"
    detail = json.loads(event["detail"])
    assert detail == {"session_id": sid(first), "reason": "after_reuse_interval"}
    secrets_seen = [first["refresh_token"], second["refresh_token"], first["access_token"]]
    secrets_seen += [second["access_token"], sha256(first["refresh_token"]).hex()]
    assert not any(secret in event["everything"] for secret in secrets_seen)


def test_unknown_token_is_not_reuse(client: httpx.Client, dsn: str) -> None:
    body = sign_up(client)
    unknown = refresh(client, "x" * 43)
    assert unknown.status_code == 401 and unknown.json()["code"] == "session_ended"
    assert refresh(client, body["refresh_token"]).status_code == 200


def test_janitor_removes_retired_tokens_with_their_session(dsn: str, smtp: Any) -> None:
    settings = make_settings(dsn, smtp.port, sessions={"cleanup_interval": 0.2})
    running = Service(settings).start()
    try:
        with running.client() as client:
            alice = sign_up(client)
            refreshed(client, alice["refresh_token"])
            bob = sign_up(client, "bob")
            refreshed(client, bob["refresh_token"])
        assert len(retired_hashes(dsn)) == 2
        run_sql(
            dsn,
            "update auth.sessions set revoked_at = now() - interval '2 days'"
            " where user_id = (select id from auth.users where username = 'alice')",
        )
        wait_until(lambda: retired_hashes(dsn) == {sha256(bob["refresh_token"])}, timeout=10)
    finally:
        running.stop()


# -- cookie mode --------------------------------------------------------------------------------


def test_cookie_mode_rotates_the_cookie(
    dsn: str, smtp: Any, load_todos: Any, postgrest_factory: Any
) -> None:
    cookie = {"enabled": True, "secure": False}
    running = Service(make_settings(dsn, smtp.port, cookie=cookie)).start()
    tab = httpx.Client(timeout=30)
    other_tab = httpx.Client(timeout=30)
    try:
        load_todos()
        rest = postgrest_factory(running.settings, pre_request="authenticate")
        signed_up = tab.post(
            running.base + "/users", json={"username": "alice", "password": PASSWORD}
        )
        assert signed_up.status_code == 201, signed_up.text
        first = tab.cookies[COOKIE]
        other_tab.cookies.set(
            COOKIE, first, domain="127.0.0.1"
        )  # a request sent before the rotation landed

        response = tab.post(running.base + "/refresh_token")
        assert response.status_code == 200, response.text
        assert "refresh_token" not in response.json()  # the cookie, out of scripts' reach
        assert response.headers["set-cookie"].startswith(f"{COOKIE}=")
        second = tab.cookies[COOKIE]
        assert second != first
        assert current_hash(dsn) == sha256(second)
        assert tab.get(rest.url + "/rpc/me").json()["username"] == "alice"

        # Within the interval the retired cookie still opens the session, at PostgREST and
        # at the service; a refresh with it answers the current cookie.
        assert other_tab.get(rest.url + "/rpc/me").json()["username"] == "alice"
        assert other_tab.get(running.base + "/user").status_code == 200
        late = other_tab.post(running.base + "/refresh_token")
        assert late.status_code == 200, late.text
        assert other_tab.cookies[COOKIE] == second

        # Long after: the retired cookie is anonymous at PostgREST, and a refresh with it
        # ends the session.
        stale = httpx.Client(timeout=30, cookies={COOKIE: first})
        try:
            run_sql(
                dsn, "update auth.refresh_tokens_retired set retired_at = now() - interval '1 hour'"
            )
            assert stale.get(rest.url + "/rpc/me").json() == {"id": None, "username": None}
            assert stale.get(running.base + "/user").status_code == 401
            assert tab.get(rest.url + "/rpc/me").json()["username"] == "alice"
            reused = stale.post(running.base + "/refresh_token")
            assert reused.status_code == 401 and reused.json()["code"] == "refresh_token_reused"
            assert tab.get(rest.url + "/rpc/me").json() == {"id": None, "username": None}
            assert tab.post(running.base + "/refresh_token").status_code == 401
        finally:
            stale.close()
    finally:
        tab.close()
        other_tab.close()
        running.stop()


def test_a_rotation_lost_in_a_crash_does_not_sign_the_client_out(
    client: httpx.Client, dsn: str
) -> None:
    """Rotations commit without waiting for the WAL flush. Put the session back as a crash
    before the flush would leave it (the old token current, no retired row): the client, which
    holds the successor, still refreshes, and the chain goes on."""
    first = sign_up(client)
    second = refreshed(client, first["refresh_token"])
    run_sql(
        dsn,
        "update auth.sessions set token_hash = $1, next_token_hash = $2",
        sha256(first["refresh_token"]),
        sha256(second["refresh_token"]),
    )
    run_sql(dsn, "delete from auth.refresh_tokens_retired")
    third = refreshed(client, second["refresh_token"])
    assert third["refresh_token"] not in (first["refresh_token"], second["refresh_token"])
    assert current_hash(dsn) == sha256(third["refresh_token"])
    assert refreshed(client, third["refresh_token"])["refresh_token"]
