"""Many requests at once, and the database dropping the service's connections."""

from __future__ import annotations

import asyncio
from collections import Counter

import bcrypt
import httpx

from .support import Service, run_sql, wait_until

PASSWORD = "correct horse"


async def _post_all(base: str, bodies: list[dict[str, str]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        return await asyncio.gather(*(client.post("/users", json=b) for b in bodies))


def test_50_concurrent_signups_of_one_username(service: Service, dsn):
    bodies = [{"username": "Racer" if i % 2 else "racer", "password": PASSWORD} for i in range(50)]
    responses = asyncio.run(_post_all(service.base, bodies))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 49}, statuses
    assert all(r.json()["code"] == "username_taken" for r in responses if r.status_code == 409)
    assert run_sql(dsn, "select count(*) from auth.users")[0][0] == 1
    assert run_sql(dsn, "select count(*) from auth.sessions")[0][0] == 1


def test_concurrent_signups_of_one_email(service: Service, dsn):
    bodies = [
        {"username": f"user{i}", "password": PASSWORD, "email": "same@example.com"}
        for i in range(10)
    ]
    responses = asyncio.run(_post_all(service.base, bodies))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 9}, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"email_taken"}
    assert run_sql(dsn, "select count(*) from auth.outbox")[0][0] == 1  # one welcome mail


def test_20_concurrent_distinct_signups(service: Service, dsn):
    bodies = [{"username": f"user{i}", "password": PASSWORD} for i in range(20)]
    responses = asyncio.run(_post_all(service.base, bodies))
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    assert run_sql(dsn, "select count(*) from auth.users")[0][0] == 20


def test_concurrent_reset_token_uses_spend_it_once(service: Service, smtp, dsn):
    import re

    from .support import body_text

    with service.client() as client:
        client.post(
            "/users", json={"username": "alice", "password": PASSWORD, "email": "alice@example.com"}
        )
        client.post("/forgot_password", json={"username": "alice"})
    mails = smtp.mailbox.wait_for("alice@example.com", count=2)
    [mail] = [m for m in mails if "reset" in m["Subject"].lower()]  # sent in either order
    [token] = re.findall(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", body_text(mail))

    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=service.base, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/change_password",
                        json={
                            "username": "alice",
                            "reset_token": token,
                            "new_password": f"new password {i}",
                            "new_password_confirm": f"new password {i}",
                        },
                    )
                    for i in range(8)
                )
            )

    answers = asyncio.run(go())
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {200: 1, 401: 7}, statuses
    # One change happened, and it is the one that was answered 200.
    [winner] = [i for i, r in enumerate(answers) if r.status_code == 200]
    [user] = run_sql(dsn, "select password, token_count from auth.users where username = 'alice'")
    assert user["token_count"] == 1
    assert bcrypt.checkpw(f"new password {winner}".encode(), user["password"].encode())


def _terminate_service_connections(dsn: str) -> int:
    rows = run_sql(
        dsn,
        "select pg_terminate_backend(pid) from pg_stat_activity"
        " where datname = current_database() and pid <> pg_backend_pid()",
    )
    return len(rows)


def test_service_survives_its_connections_being_killed(service: Service, dsn, smtp):
    with service.client() as client:
        r = client.post("/users", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 201, r.text
        for _ in range(3):
            assert _terminate_service_connections(dsn) >= 1
            answers = []
            for _ in range(3):
                r = client.post("/refresh_token", json={"username": "alice", "password": PASSWORD})
                answers.append(r)
                if r.status_code == 200:
                    break
                assert r.status_code == 503, r.text
                assert r.json()["code"] == "database_unavailable"
                assert int(r.headers["Retry-After"]) >= 1
            assert answers[-1].status_code == 200, [a.text for a in answers]
        assert client.get("/health").status_code == 200
        # The mail worker reconnects too: a welcome mail still goes out.
        r = client.post(
            "/users", json={"username": "bob", "password": PASSWORD, "email": "bob@example.com"}
        )
        assert r.status_code == 201, r.text
    smtp.mailbox.wait_for("bob@example.com", timeout=20)
    assert service.thread.is_alive()


def test_database_away_answers_503_then_recovers(service: Service, admin_dsn, dsn):
    """Refuse new connections to the database for a moment, as a restart would."""
    name = run_sql(dsn, "select current_database()")[0][0]
    with service.client() as client:
        r = client.post("/users", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 201, r.text
        run_sql(admin_dsn, f'alter database "{name}" allow_connections false')
        try:
            run_sql(
                admin_dsn,
                "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1",
                name,
            )
            r = client.post("/refresh_token", json={"username": "alice", "password": PASSWORD})
            assert r.status_code == 503, r.text
            assert r.headers["Retry-After"].isdigit()
            body = r.json()
            assert body["code"] == "database_unavailable" and body["status"] == 503
            # Alive (no reason to restart it), but not ready for traffic.
            r = client.get("/health")
            assert r.status_code == 200 and r.json()["database"] == "down", r.text
            r = client.get("/ready")
            assert r.status_code == 503 and r.headers["Retry-After"].isdigit(), r.text
        finally:
            run_sql(admin_dsn, f'alter database "{name}" allow_connections true')

        def recovered() -> bool:
            r = client.post("/refresh_token", json={"username": "alice", "password": PASSWORD})
            return r.status_code == 200

        wait_until(recovered, timeout=15, interval=0.2)
    assert service.thread.is_alive()
