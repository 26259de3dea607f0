"""Regression tests for the fixes of the security review: each one fails on the code before it.

Limits that hold under concurrency, the client address behind proxies, login CSRF in cookie mode,
recovery answered before the lookup, foreign roles through the pre-request, lock order of global
logout, compat-mode role adoption, reserved role names, reset tokens bound to the email, and deep
JSON.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import bcrypt
import httpx
import jwt
import pytest
import uvicorn
from starlette.requests import Request

from postgrest_auth.api.client import client_address
from postgrest_auth.app import create_app
from postgrest_auth.config import ConfigError, Email, Http
from postgrest_auth.ratelimit import address_bucket

from .support import (
    NODE_SCHEMA,
    SECRET,
    Service,
    SmtpServer,
    body_text,
    make_settings,
    run_script,
    run_sql,
    wait_until,
)

PASSWORD = "correct horse battery"
JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


def unique(prefix: str = "u") -> str:
    """Roles are cluster-wide and outlive a test's database; usernames fit varchar(20)."""
    return prefix + uuid.uuid4().hex[:10]


def sign_up(client: httpx.Client, username: str, email: str | None = None, **kw: Any) -> Any:
    data: dict[str, Any] = {"username": username, "password": PASSWORD}
    if email:
        data["email"] = email
    r = client.post("/users", json=data, **kw)
    assert r.status_code == 201, r.text
    return r


@pytest.fixture
def start_service(dsn: str, smtp: SmtpServer) -> Iterator[Any]:
    """Services with overridden settings on this test's database; all stopped afterwards."""
    started: list[Service] = []

    def start(**overrides: Any) -> Service:
        service = Service(make_settings(dsn, smtp.port, **overrides)).start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


# -- 1. per-account limit under concurrency -------------------------------------------------------


async def _guesses(base: str, bodies: list[dict[str, str]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        return await asyncio.gather(*(client.post("/refresh_token", json=b) for b in bodies))


def test_concurrent_password_guesses_stay_within_the_account_limit(start_service) -> None:
    service = start_service(rate_limit={"per_account": {"requests": 5, "window": 300}})
    with service.client() as client:
        sign_up(client, "victim", "victim@example.com")
        wrong = {"username": "victim", "password": "wrong password"}
        right = {"username": "victim", "password": PASSWORD}
        bodies = [wrong] * 30
        bodies[20] = right
        answers = asyncio.run(_guesses(service.base, bodies))
        wrong_codes = [r.status_code for i, r in enumerate(answers) if i != 20]
        assert wrong_codes.count(401) <= 5, wrong_codes
        assert set(wrong_codes) <= {401, 429}, [r.text for r in answers if r.status_code >= 500]
        assert answers[20].status_code in (200, 429), answers[20].text
        # Once the budget is spent, the right password is refused too, by username or by email.
        for path, login in (("/refresh_token", "victim"), ("/login", "victim@example.com")):
            r = client.post(path, json={"username": login, "password": PASSWORD})
            assert r.status_code == 429, (path, r.text)
            assert int(r.headers["Retry-After"]) > 0
        # A second wave with the right password in it gets nothing through either.
        late = asyncio.run(_guesses(service.base, [wrong] * 5 + [right] + [wrong] * 4))
        assert {r.status_code for r in late} == {429}, [r.text for r in late]


def test_successful_logins_do_not_use_up_the_account_limit(start_service) -> None:
    service = start_service(rate_limit={"per_account": {"requests": 5, "window": 300}})
    with service.client() as client:
        sign_up(client, "regular", "regular@example.com")
        for _ in range(4):
            r = client.post("/login", json={"username": "regular", "password": "wrong password"})
            assert r.status_code == 401, r.text
        for n in range(10):
            login = "regular@example.com" if n % 2 else "regular"
            r = client.post("/login", json={"username": login, "password": PASSWORD})
            assert r.status_code == 200, (n, r.text)
        # Four failures counted; the fifth is still allowed, the sixth is not.
        wrong = {"username": "regular", "password": "wrong password"}
        assert client.post("/refresh_token", json=wrong).status_code == 401
        assert client.post("/refresh_token", json=wrong).status_code == 429


# -- 2. the client address ------------------------------------------------------------------------


def request_from(peer: str | None, headers: dict[str, str] | None = None) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/auth/login",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": (peer, 50000) if peer is not None else None,
    }
    return Request(scope)


FORWARDED = Http(client_address_header="X-Forwarded-For")


@pytest.mark.parametrize(
    ("peer", "header", "settings", "expected"),
    [
        ("127.0.0.1", "6.6.6.1, 203.0.113.9", FORWARDED, "203.0.113.9"),
        (
            "127.0.0.1",
            "6.6.6.1, 203.0.113.9, 10.0.0.2, 10.0.0.3",
            Http(
                client_address_header="X-Forwarded-For",
                trusted_proxies=["127.0.0.1", "10.0.0.2", "10.0.0.3"],
            ),
            "203.0.113.9",
        ),
        (
            "10.1.2.3",
            "6.6.6.1, 203.0.113.9, 10.200.0.1",
            Http(client_address_header="X-Forwarded-For", trusted_proxies=["10.0.0.0/8"]),
            "203.0.113.9",
        ),
        ("198.51.100.7", "203.0.113.9", FORWARDED, "198.51.100.7"),
        ("::ffff:127.0.0.1", "203.0.113.9", FORWARDED, "203.0.113.9"),
        ("::ffff:198.51.100.7", None, Http(), "198.51.100.7"),
        ("127.0.0.1", "not an address", FORWARDED, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.9, garbage", FORWARDED, "127.0.0.1"),
        ("127.0.0.1", None, FORWARDED, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.9", Http(), "127.0.0.1"),
        (None, "203.0.113.9", FORWARDED, None),
        ("testclient", None, Http(), None),
    ],
    ids=[
        "trusted-peer",
        "trusted-chain-skipped",
        "trusted-network",
        "untrusted-peer",
        "v4-mapped-peer-trusted",
        "v4-mapped-peer-normalized",
        "garbage-header",
        "garbage-rightmost",
        "missing-header",
        "header-not-configured",
        "unix-socket",
        "not-an-address",
    ],
)
def test_client_address(
    peer: str | None, header: str | None, settings: Http, expected: str | None
) -> None:
    headers = {"X-Forwarded-For": header} if header is not None else {}
    assert client_address(request_from(peer, headers), settings) == expected


def test_address_bucket_groups_ipv6_by_64() -> None:
    a = address_bucket("2001:db8:1:2:aaaa::1")
    assert a == address_bucket("2001:db8:1:2:bbbb:cccc:dddd:eeee") == "2001:db8:1:2::/64"
    assert a != address_bucket("2001:db8:1:3::1")
    assert address_bucket("203.0.113.9") == "203.0.113.9"


def test_clients_over_a_unix_socket_are_not_lumped_into_one_address_bucket(
    dsn: str, smtp: SmtpServer
) -> None:
    """No peer address: the per-address limit does not apply, rather than one shared bucket."""
    settings = make_settings(
        dsn, smtp.port, rate_limit={"per_address": {"requests": 1, "window": 300}}
    )
    path = os.path.join(tempfile.mkdtemp(prefix="pa-uds-", dir="/tmp"), "auth.sock")
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), uds=path, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), timeout=30)
        assert server.started, "the service did not start on a unix socket"
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport, base_url="http://localhost/auth") as client:
            for n in range(3):
                r = client.post("/forgot_password", json={"username": f"someone{n}"})
                assert r.status_code == 200, (n, r.text)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


# -- 3. login CSRF in cookie mode -----------------------------------------------------------------

FRONTEND = "https://app.example"
COOKIE_MODE = {"cookie": {"enabled": True, "secure": False}, "http": {"cors_origins": [FRONTEND]}}


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}],
    ids=["origin", "sec-fetch-site", "null-origin"],
)
def test_cross_origin_login_and_signup_are_refused_in_cookie_mode(
    start_service, dsn: str, headers: dict[str, str]
) -> None:
    service = start_service(**COOKIE_MODE)
    with service.client() as client:
        sign_up(client, "alice")
        client.cookies.clear()
        login = client.post(
            "/login", json={"username": "alice", "password": PASSWORD}, headers=headers
        )
        assert login.status_code == 403, login.text
        assert login.json()["code"] == "cross_origin"
        assert "set-cookie" not in login.headers
        signup = client.post(
            "/users", json={"username": "mallory", "password": PASSWORD}, headers=headers
        )
        assert signup.status_code == 403, signup.text
        assert "set-cookie" not in signup.headers
    assert run_sql(dsn, "select count(*) from auth.users where username = 'mallory'")[0][0] == 0


def test_same_origin_and_listed_origins_may_log_in_in_cookie_mode(start_service) -> None:
    service = start_service(**COOKIE_MODE)
    with service.client() as client:
        sign_up(client, "alice", headers={"Origin": service.url})
        for headers in (
            {"Origin": service.url, "Sec-Fetch-Site": "same-origin"},
            {"Origin": FRONTEND, "Sec-Fetch-Site": "cross-site"},
            {},  # not a browser: no Origin at all
        ):
            r = client.post(
                "/login", json={"username": "alice", "password": PASSWORD}, headers=headers
            )
            assert r.status_code == 200, (headers, r.text)
            assert "set-cookie" in r.headers


def test_cross_origin_login_is_allowed_in_bearer_mode(start_service) -> None:
    service = start_service()
    with service.client() as client:
        sign_up(client, "alice", headers={"Origin": "https://elsewhere.example"})
        r = client.post(
            "/login",
            json={"username": "alice", "password": PASSWORD},
            headers={"Origin": "https://elsewhere.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["access_token"]


# -- 4. recovery answers before the lookup --------------------------------------------------------


def _comparable(r: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    # Date and the request id differ between any two answers.
    skipped = ("date", "x-request-id")
    return r.status_code, r.content, {k: v for k, v in r.headers.items() if k not in skipped}


def test_forgot_answers_are_identical_for_known_and_unknown_accounts(client, smtp) -> None:
    sign_up(client, "alice", "alice@example.com")
    smtp.mailbox.wait_for("alice@example.com")
    known = client.post("/forgot_password", json={"username": "alice"})
    unknown = client.post("/forgot_password", json={"username": "nobody"})
    assert known.status_code == 200, known.text
    assert _comparable(known) == _comparable(unknown)
    known = client.post("/forgot_username", json={"email": "alice@example.com"})
    unknown = client.post("/forgot_username", json={"email": "nobody@example.com"})
    assert known.status_code == 200, known.text
    assert _comparable(known) == _comparable(unknown)
    # The work still happens after the answer: welcome, reset and username mails arrive.
    mails = smtp.mailbox.wait_for("alice@example.com", count=3)
    subjects = " ".join(m["Subject"].lower() for m in mails)
    assert "reset" in subjects, subjects
    assert any(
        "alice" in body_text(m) and "reset" not in m["Subject"].lower() for m in mails[1:]
    ), subjects
    assert smtp.mailbox.to("nobody@example.com") == []


async def _forgot_while_users_locked(dsn: str, base: str) -> httpx.Response:
    """The users table is locked: an answer that waited for the lookup would not come."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("lock table auth.users in access exclusive mode")
            async with httpx.AsyncClient(base_url=base, timeout=5) as client:
                return await client.post("/forgot_password", json={"username": "alice"})
    finally:
        await conn.close()


def test_forgot_password_answers_before_the_lookup(service: Service, dsn: str, smtp) -> None:
    with service.client() as client:
        sign_up(client, "alice", "alice@example.com")
    smtp.mailbox.wait_for("alice@example.com")
    r = asyncio.run(_forgot_while_users_locked(dsn, service.base))
    assert r.status_code == 200, r.text
    mails = smtp.mailbox.wait_for("alice@example.com", count=2)  # sent once the lock is gone
    assert "reset" in mails[-1]["Subject"].lower()


# -- 5. tokens of other issuers' roles pass the pre-request ---------------------------------------


@pytest.mark.parametrize("pre_request", ["check_token_count", "authenticate"])
def test_token_of_another_issuers_role_passes_the_pre_request(
    service: Service, dsn: str, postgrest_factory, pre_request: str
) -> None:
    role = unique("service_role_")
    run_script(
        dsn,
        f"""
        create role "{role}" nologin;
        grant "{role}" to "{service.settings.roles.authenticator}";
        create schema if not exists api;
        create view api.ping as select 1 as ok;
        grant usage on schema api to "{role}";
        grant select on api.ping to "{role}";
    """,
    )
    # The operator's step after granting the authenticator a role (`postgrest-auth migrate`
    # does the same): the pre-request's schema is closed to roles PostgREST cannot become.
    run_script(dsn, "select auth.grant_to_postgrest_roles()")
    rest = postgrest_factory(service.settings, pre_request=pre_request)
    token = jwt.encode({"role": role, "exp": int(time.time()) + 300}, SECRET, algorithm="HS256")
    with rest.client() as http:
        r = http.get("/ping", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        assert r.json() == [{"ok": 1}]


# -- 6. global logout racing change_password ------------------------------------------------------


CHANGE = {
    "username": "racer",
    "current_password": PASSWORD,
    "new_password": PASSWORD,
    "new_password_confirm": PASSWORD,
}


def _login_racer(service: Service) -> str:
    with service.client() as client:
        r = client.post("/login", json={"username": "racer", "password": PASSWORD})
        assert r.status_code == 200, r.text
        return r.json()["access_token"]


async def _race(base: str, token: str, logout_delay: float = 0.0) -> list[httpx.Response]:
    async def logout() -> httpx.Response:
        await asyncio.sleep(logout_delay)  # staggered starts reach every interleaving
        return await client.post(
            "/logout", json={"scope": "global"}, headers={"Authorization": f"Bearer {token}"}
        )

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        return await asyncio.gather(client.post("/change_password", json=CHANGE), logout())


async def _lock_waiters(conn: asyncpg.Connection, count: int) -> None:
    """Until `count` backends wait on a lock (the activity view is re-read every time)."""
    deadline = time.monotonic() + 10
    while True:
        await conn.execute("select pg_stat_clear_snapshot()")
        waiting = await conn.fetchval(
            "select count(*) from pg_stat_activity"
            " where datname = current_database() and wait_event_type = 'Lock'"
        )
        if waiting >= count:
            return
        assert time.monotonic() < deadline, f"{count} requests never queued on the user row"
        await asyncio.sleep(0.01)


async def _aligned_race(dsn: str, base: str, token: str, change_first: bool) -> list[Any]:
    """Both requests queue on the user's row, locked here, and start their writes together."""
    conn = await asyncpg.connect(dsn)
    try:
        lock = conn.transaction()
        await lock.start()
        await conn.execute("select from auth.users where username = 'racer' for update")
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            requests = [
                lambda: client.post("/change_password", json=CHANGE),
                lambda: client.post(
                    "/logout",
                    json={"scope": "global"},
                    headers={"Authorization": f"Bearer {token}"},
                ),
            ]
            if not change_first:
                requests.reverse()
            first = asyncio.create_task(requests[0]())
            await _lock_waiters(conn, 1)
            second = asyncio.create_task(requests[1]())
            await _lock_waiters(conn, 2)
            await lock.rollback()
            return [await first, await second]
    finally:
        await conn.close()


class RacerState:
    """The racer's token_count and sessions, read from the database."""

    def __init__(self, dsn: str) -> None:
        self.token_count = run_sql(
            dsn, "select token_count from auth.users where username = 'racer'"
        )[0][0]
        rows = run_sql(
            dsn,
            "select s.id, s.token_hash, s.revoked_at is null as live from auth.sessions s"
            " join auth.users u on u.id = s.user_id where u.username = 'racer'",
        )
        self.sessions = {row["id"]: row for row in rows}
        self.live = {row["id"] for row in rows if row["live"]}


def assert_race_outcome(
    dsn: str, before: RacerState, change: httpx.Response, logout: httpx.Response
) -> None:
    """What the database holds after a change_password and a global logout raced.

    Each success moves token_count once. Every session older than the race is revoked. The
    change's own new session is live if the change came last, and revoked if a global logout
    came after it; the count in the change's token tells which (a later logout moved it on)."""
    assert change.status_code in (200, 401), change.text
    assert logout.status_code in (200, 401), logout.text
    if change.status_code == 401:  # a logout moved the count on between its check and its write
        assert change.json()["code"] == "invalid_credentials", change.text
    if logout.status_code == 401:  # the change had ended the logout's session first
        assert logout.json()["code"] == "token_revoked", logout.text
    successes = [r for r in (change, logout) if r.status_code == 200]
    assert successes, [change.text, logout.text]
    after = RacerState(dsn)
    assert after.token_count == before.token_count + len(successes), (
        before.token_count,
        after.token_count,
        change.text,
        logout.text,
    )
    assert before.sessions, "the racer was signed in before the race"
    assert not (after.live & set(before.sessions)), "a session from before the race is live"
    new = set(after.sessions) - set(before.sessions)
    if change.status_code != 200:
        assert new == set(), new
        assert after.live == set()
        return
    digest = hashlib.sha256(change.json()["refresh_token"].encode()).digest()
    mine = {sid for sid, row in after.sessions.items() if row["token_hash"] == digest}
    assert len(mine) == 1 and new == mine, (new, mine)
    count = jwt.decode(
        change.json()["access_token"], SECRET, algorithms=["HS256"], audience="authenticated"
    )["count"]
    if after.token_count == count:  # the change was last: its session alone is live
        assert after.live == mine
    else:  # a global logout came after the change and ended its session too
        assert logout.status_code == 200 and after.token_count == count + 1, (
            count,
            after.token_count,
        )
        assert after.live == set()


@pytest.mark.parametrize("change_first", [True, False], ids=["change-first", "logout-first"])
def test_global_logout_and_change_password_lock_in_one_order(
    service: Service, dsn: str, change_first: bool
) -> None:
    """The old order (sessions, then the user) deadlocked here: 503 after deadlock_timeout."""
    with service.client() as client:
        sign_up(client, "racer")
    token = _login_racer(service)
    before = RacerState(dsn)
    change, logout = asyncio.run(_aligned_race(dsn, service.base, token, change_first))
    if not change_first:
        change, logout = logout, change
    assert_race_outcome(dsn, before, change, logout)


def test_global_logout_racing_change_password_never_fails(service: Service, dsn: str) -> None:
    with service.client() as client:
        sign_up(client, "racer")
    statuses: list[int] = []
    for n in range(20):
        token = _login_racer(service)
        before = RacerState(dsn)
        change, logout = asyncio.run(_race(service.base, token, logout_delay=(n % 10) * 0.001))
        assert_race_outcome(dsn, before, change, logout)
        statuses += [change.status_code, logout.status_code]
    assert 200 in statuses


# -- 7. and 8. compat mode: adopting the Node original's roles, reserved names --------------------

NODE_SCHEMA_WITH_WHOAMI = (
    NODE_SCHEMA
    + """
create schema api;
create function api.whoami() returns text language sql stable as $$ select current_user::text $$;
grant usage on schema api to public;
grant execute on function api.whoami() to public;
"""
)


def test_compat_mode_adopts_node_roles_but_never_login_roles(
    dsn: str, smtp: SmtpServer, start_service, postgrest_factory
) -> None:
    plain, login_role = unique("n"), unique("l")
    powerful, owner = unique("p"), unique("o")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    run_script(
        dsn,
        NODE_SCHEMA_WITH_WHOAMI
        + f"""
        create role "{plain}" nologin;  -- as the Node original left it: not granted to anyone
        create role "{login_role}" login;
        create role "{powerful}" nologin;  -- plain attributes, but privileges of its own
        grant pg_read_all_data to "{powerful}";
        create role "{owner}" nologin;
        create table public."{owner}_things" (id int);
        alter table public."{owner}_things" owner to "{owner}";
    """,
    )
    for name in (plain, login_role, powerful, owner):
        run_sql(
            dsn,
            "insert into auth.users (username, username_lowercase, email, password)"
            " values ($1::text, $1::text, $1::text || '@example.com', $2)",
            name,
            hashed,
        )
    service = start_service(roles={"per_user": True})  # migrates
    authenticator = service.settings.roles.authenticator
    rest = postgrest_factory(service.settings, pre_request="check_token_count")
    with service.client() as auth, rest.client() as http:
        r = auth.post("/login", json={"username": plain, "password": PASSWORD})
        assert r.status_code == 200, r.text
        whoami = http.post(
            "/rpc/whoami", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
        )
        assert whoami.status_code == 200, whoami.text
        assert whoami.json() == plain
    member = "select pg_has_role($1, $2, 'member')"
    assert run_sql(dsn, member, authenticator, plain)[0][0] is True
    assert run_sql(dsn, member, authenticator, login_role)[0][0] is False
    assert run_sql(dsn, member, authenticator, powerful)[0][0] is False
    assert run_sql(dsn, member, authenticator, "pg_read_all_data")[0][0] is False
    assert run_sql(dsn, member, authenticator, owner)[0][0] is False


@pytest.mark.parametrize("username", ["public", "None"])
def test_compat_mode_refuses_reserved_role_names_with_409(
    start_service, dsn: str, username: str
) -> None:
    service = start_service(roles={"per_user": True})
    with service.client() as client:
        r = client.post("/users", json={"username": username, "password": PASSWORD})
        assert r.status_code == 409, r.text
        assert r.json()["errors"][0]["field"] == "username"
    # Refused as a whole: no account without its role, no role, no session.
    assert run_sql(dsn, "select username from auth.users") == []
    assert run_sql(dsn, "select id from auth.sessions") == []
    roles = run_sql(
        dsn, "select rolname from pg_roles where lower(rolname) = lower($1::text)", username
    )
    assert roles == [], roles


def test_compat_mode_refuses_the_services_own_role_names(start_service, dsn: str) -> None:
    """A per-user role named like roles.service would carry the admin API's role claim."""
    service = start_service(roles={"per_user": True}, usernames={"pattern": "^[a-z_]{3,20}$"})
    with service.client() as client:
        for name in ("service_role", "normal_user", "web_anon"):
            r = client.post("/users", json={"username": name, "password": PASSWORD})
            assert r.status_code == 400, r.text
            assert r.json()["errors"][0] == {
                "field": "username",
                "location": "body",
                "messages": ["is not available"],
            }
    assert run_sql(dsn, "select username from auth.users") == []


# -- 9. a reset token is bound to the address it was mailed to ------------------------------------


def test_reset_token_dies_when_the_email_changes(client, smtp) -> None:
    sign_up(client, "alice", "alice@example.com")
    smtp.mailbox.wait_for("alice@example.com")
    assert client.post("/forgot_password", json={"username": "alice"}).status_code == 200
    mails = smtp.mailbox.wait_for("alice@example.com", count=2)
    reset_mail = next(m for m in mails if "reset" in m["Subject"].lower())
    (token,) = JWT.findall(body_text(reset_mail))
    r = client.post(
        "/change_email",
        json={"username": "alice", "password": PASSWORD, "email": "new@example.com"},
    )
    assert r.status_code == 200, r.text
    new = "brand new password"
    r = client.post(
        "/change_password",
        json={
            "username": "alice",
            "reset_token": token,
            "new_password": new,
            "new_password_confirm": new,
        },
    )
    assert r.status_code == 401, r.text
    assert r.json()["code"] == "invalid_reset_token"
    same = client.post("/login", json={"username": "alice", "password": PASSWORD})
    assert same.status_code == 200, same.text


# -- 10. and 11. bodies and settings --------------------------------------------------------------


@pytest.mark.parametrize("nested", ["[" * 30000, '{"a":' * 12000])
def test_deeply_nested_json_is_a_400(client, nested: str) -> None:
    r = client.post("/users", content=nested, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_json"


def test_mail_attempts_default_to_30() -> None:
    assert Email().max_attempts == 30


@pytest.mark.parametrize(
    "http", [{"cors_origins": ["*"]}, {"trusted_proxies": ["10.0.0.0/8", "a proxy"]}]
)
def test_wildcard_origins_and_bad_proxies_are_refused(http: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(http))):
        make_settings("postgresql://localhost/x", http=http)
