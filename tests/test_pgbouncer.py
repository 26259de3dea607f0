"""The service and PostgREST through Debian's real PgBouncer in transaction pooling mode.

PgBouncer lends each transaction whichever of its `default_pool_size` (2) server connections is
free, while the service's pool holds 8 client connections: anything left on a session (a named
prepared statement, a SET, a LISTEN, a session advisory lock) would be met by another client or
be missing on the next transaction. The service runs with `db.statement_cache: false`, migrates
through PgBouncer too, and sends mail by polling, or by LISTEN over `db.direct_connection_string`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from postgrest_auth.mail.worker import LISTENER_NAME

from .pgbouncer_support import PgBouncer
from .support import (
    AUTHENTICATOR_PASSWORD,
    PostgREST,
    Service,
    SmtpServer,
    allow_authenticator_login,
    body_text,
    free_port,
    make_settings,
    password_change,
    run_script,
    run_sql,
    wait_until,
)

SERVICE_PASSWORD = "bouncer-client-password"
PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new password"
PGBOUNCER_POOL = 2
SERVICE_POOL = 8
UNSENT = "select count(*) from auth.outbox where sent_at is null"
# A LISTEN from anything but the direct listener went through PgBouncer.
OTHER_LISTENS = (
    "select count(*) from pg_stat_activity where datname = current_database()"
    " and query ilike 'listen%' and application_name <> $1"
)


@pytest.fixture
def pgbouncer(admin_dsn: str) -> Iterator[PgBouncer]:
    users = {"postgres": SERVICE_PASSWORD, "authenticator": AUTHENTICATOR_PASSWORD}
    bouncer = PgBouncer(admin_dsn, users, pool_size=PGBOUNCER_POOL).start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture
def through(pgbouncer: PgBouncer, dsn: str) -> str:
    """This test's database, as the service reaches it through PgBouncer."""
    return pgbouncer.dsn(urlsplit(dsn).path.lstrip("/"), "postgres", SERVICE_PASSWORD)


@pytest.fixture
def start_service(through: str, smtp: SmtpServer) -> Iterator[Any]:
    started: list[Service] = []

    def start(smtp_port: int = smtp.port, **db: Any) -> Service:
        settings = make_settings(
            through,
            smtp_port,
            email={"max_attempts": 1000},
            db={
                "connection_string": through,
                "statement_cache": False,
                "pool": {"min": 1, "max": SERVICE_POOL},
                "direct_connection_string": None,  # polling, unless a test gives one
                **db,
            },
        )
        service = Service(settings).start()  # migrates through PgBouncer
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def arrived(smtp: SmtpServer, address: str, subject: str, since: float) -> float:
    """Seconds from `since` until a mail to `address` whose subject has `subject` arrived."""

    def found() -> list[EmailMessage]:
        return [m for m in smtp.mailbox.to(address) if subject in str(m["Subject"])]

    wait_until(found, timeout=15, interval=0.01)
    return time.monotonic() - since


def listeners(dsn: str) -> list[str]:
    """The mail listeners' backends on this database, each as its last statement."""
    rows = run_sql(
        dsn,
        "select query from pg_stat_activity where datname = current_database()"
        " and application_name = $1",
        LISTENER_NAME,
    )
    return [r["query"] for r in rows]


@pytest.mark.parametrize("direct", [False, True], ids=["polling", "direct-listen"])
def test_core_flow_and_mail_through_pgbouncer(
    start_service: Any, smtp: SmtpServer, dsn: str, direct: bool
) -> None:
    service = start_service(**({"direct_connection_string": dsn} if direct else {}))
    address = "alice@example.com"
    with service.client() as http:
        began = time.monotonic()
        r = http.post("/users", json={"username": "alice", "email": address, "password": PASSWORD})
        assert r.status_code == 201, r.text
        signed_up = r.json()
        welcome = arrived(smtp, address, "Welcome", began)

        r = http.post("/login", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 200, r.text
        r = http.post("/refresh_token", json={"refresh_token": signed_up["refresh_token"]})
        assert r.status_code == 200, r.text
        refreshed = r.json()
        assert http.get("/user", headers=bearer(refreshed["access_token"])).status_code == 200

        r = http.post("/change_password", json=password_change("alice", PASSWORD, NEW_PASSWORD))
        assert r.status_code == 200, r.text
        changed = r.json()
        for old in (signed_up, refreshed):
            assert http.get("/user", headers=bearer(old["access_token"])).status_code == 401
            r = http.post("/refresh_token", json={"refresh_token": old["refresh_token"]})
            assert r.status_code == 401, r.text
        assert http.get("/user", headers=bearer(changed["access_token"])).status_code == 200

        began = time.monotonic()
        r = http.post("/forgot_password", json={"username": "alice"})
        assert r.status_code == 200, r.text
        recovery = arrived(smtp, address, "Reset", began)
        (mail,) = [m for m in smtp.mailbox.to(address) if "Reset" in str(m["Subject"])]
        token = next(w for w in body_text(mail).split() if w.startswith("eyJ"))
        r = http.post(
            "/change_password",
            json={
                "username": "alice",
                "reset_token": token,
                "new_password": PASSWORD,
                "new_password_confirm": PASSWORD,
            },
        )
        assert r.status_code == 200, r.text
        assert http.post("/login", json={"username": "alice", "password": PASSWORD}).is_success
        assert http.get("/user", headers=bearer(changed["access_token"])).status_code == 401

    # Each mail exactly once: welcome, password changed, reset, password changed.
    wait_until(lambda: run_sql(dsn, UNSENT)[0][0] == 0, timeout=15)
    subjects = [str(m["Subject"]).split()[0] for m in smtp.mailbox.to(address)]
    assert sorted(subjects) == ["Reset", "Welcome", "Your", "Your"], subjects
    # LISTEN over the direct connection only, never through PgBouncer.
    found = listeners(dsn)
    if direct:
        assert len(found) == 1 and found[0].lower().startswith("listen"), found
    else:
        assert found == []
    assert run_sql(dsn, OTHER_LISTENS, LISTENER_NAME)[0][0] == 0
    print(f"\nmail after the answer: welcome {welcome:.2f} s, reset {recovery:.2f} s")
    assert welcome < 5 and recovery < 5, (welcome, recovery)


WHOAMI = """
create function api.whoami() returns text language sql stable as $$ select current_user::text $$;
grant execute on function api.whoami() to web_anon, normal_user;
"""


def test_postgrest_through_pgbouncer_refuses_a_token_revoked_by_a_password_change(
    start_service: Any, pgbouncer: PgBouncer, admin_dsn: str, dsn: str, load_todos: Any
) -> None:
    service = start_service()
    load_todos()
    run_script(dsn, WHOAMI)
    allow_authenticator_login(admin_dsn, service.settings)
    database = urlsplit(dsn).path.lstrip("/")
    through_as_authenticator = pgbouncer.dsn(database, "authenticator", AUTHENTICATOR_PASSWORD)
    rest = PostgREST(through_as_authenticator, service.settings)
    # PostgREST's own prepared statements would be missing on PgBouncer's next server connection.
    rest.env["PGRST_DB_PREPARED_STATEMENTS"] = "false"
    rest.env["PGRST_DB_POOL"] = str(SERVICE_POOL)
    rest.start()
    try:
        with service.client() as auth, rest.client() as api:
            r = auth.post("/users", json={"username": "alice", "password": PASSWORD})
            assert r.status_code == 201, r.text
            old = r.json()["access_token"]
            r = api.post("/todos", json={"description": "before"}, headers=bearer(old))
            assert r.status_code == 201, r.text
            r = api.post("/rpc/whoami", headers=bearer(old))
            assert (r.status_code, r.json()) == (200, "normal_user"), r.text

            r = auth.post("/change_password", json=password_change("alice", PASSWORD, NEW_PASSWORD))
            assert r.status_code == 200, r.text
            new = r.json()["access_token"]

            for _ in range(2 * PGBOUNCER_POOL):  # on every server connection PgBouncer lends
                r = api.get("/todos", headers=bearer(old))
                assert r.status_code == 401, r.text
                assert r.json()["code"] == "session_ended", r.text
                r = api.get("/todos", headers=bearer(new))
                assert r.status_code == 200, r.text
                assert [t["description"] for t in r.json()] == ["before"]
            # The pre-request's `set local role` ended with its transaction: anonymous again.
            assert api.post("/rpc/whoami").json() == "web_anon"
    finally:
        rest.stop()


def test_forty_parallel_requests_over_two_server_connections_all_succeed(
    start_service: Any, dsn: str
) -> None:
    service = start_service()
    with service.client() as http:
        tokens = []
        for i in range(10):
            r = http.post("/users", json={"username": f"user{i}", "password": PASSWORD})
            assert r.status_code == 201, r.text
            tokens.append(r.json())

    def request(i: int) -> httpx.Response:
        start.wait()
        user = tokens[i % 10]
        with service.client() as client:
            match i % 4:
                case 0:
                    return client.post(
                        "/login", json={"username": f"user{i % 10}", "password": PASSWORD}
                    )
                case 1:
                    return client.get("/user", headers=bearer(user["access_token"]))
                case 2:
                    return client.post("/refresh_token", headers=bearer(user["access_token"]))
                case _:
                    body = {"username": f"new{i}", "password": PASSWORD}
                    return client.post("/users", json=body)

    servers_seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            servers_seen.append(
                run_sql(
                    dsn,
                    "select count(*) from pg_stat_activity where datname = current_database()"
                    " and application_name = 'postgrest-auth'",
                )[0][0]
            )
            time.sleep(0.02)

    start = threading.Event()
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(40) as pool:
            answers = [pool.submit(request, i) for i in range(40)]
            start.set()
            results = [a.result() for a in answers]
    finally:
        done.set()
        watcher.join()
    statuses = sorted(r.status_code for r in results)
    failed = [(r.status_code, r.text) for r in results if not r.is_success]
    assert failed == [], failed
    assert len(statuses) == 40
    pool_size = service.server.config.app.state.services.pool.get_size()
    print(f"\nservice pool {pool_size}, PgBouncer server connections at most {max(servers_seen)}")
    assert pool_size > PGBOUNCER_POOL, pool_size
    assert max(servers_seen) <= PGBOUNCER_POOL, servers_seen


def test_two_polling_instances_send_each_of_20_mails_exactly_once(
    start_service: Any, dsn: str
) -> None:
    port = free_port()  # no SMTP server yet: the mail waits in the outbox
    instances = [start_service(smtp_port=port), start_service(smtp_port=port)]
    for i in range(20):
        with instances[i % 2].client() as http:
            body = {"username": f"user{i}", "email": f"user{i}@example.com", "password": PASSWORD}
            r = http.post("/users", json=body)
            assert r.status_code == 201, r.text

    smtp = SmtpServer(port=port).start()  # both workers' next polls race for the 20 mails
    try:
        wait_until(lambda: run_sql(dsn, UNSENT)[0][0] == 0, timeout=30)
        messages = list(smtp.mailbox.messages)
    finally:
        smtp.stop()
    assert sorted(m["To"] for m in messages) == sorted(f"user{i}@example.com" for i in range(20))
    assert len({m["Message-ID"] for m in messages}) == 20
