"""A database the Node original made is adopted in place: rows kept, old hashes verify."""

from __future__ import annotations

import re
import time

import bcrypt
import jwt
import pytest

from .support import NODE_SCHEMA, SECRET, Service, body_text, make_settings, run_script, run_sql

JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")

# The original allowed 3-30 letters and digits: shorter than today's minimum, still valid.
ACCOUNTS = [
    # username, password, hash prefix, rounds, email, token_count
    ("Alice", "alicepass1", b"2b", 10, "Alice@Example.com", 0),
    ("bob", "bob42", b"2a", 10, "bob@example.com", 3),
    ("carol", "carolpass9", b"2b", 4, "", 0),
]


def node_hash(password: str, prefix: bytes, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds, prefix=prefix)).decode()


@pytest.fixture
def node_database(dsn: str) -> dict[str, str]:
    """The original's table with three users; their stored hashes by username."""
    run_script(dsn, NODE_SCHEMA)
    hashes = {}
    for username, password, prefix, rounds, email, count in ACCOUNTS:
        hashed = node_hash(password, prefix, rounds)
        assert hashed.startswith(f"${prefix.decode()}${rounds:02d}$")
        run_sql(
            dsn,
            "insert into auth.users (username, username_lowercase, email, password, token_count)"
            " values ($1::text, lower($1::text), $2, $3, $4)",
            username,
            email,
            hashed,
            count,
        )
        hashes[username] = hashed
    return hashes


def stored_hash(dsn: str, username: str) -> str:
    return run_sql(dsn, "select password from auth.users where username = $1", username)[0][0]


def test_node_database_is_adopted_and_hashes_rewritten_at_the_configured_cost(
    dsn, smtp, node_database
):
    before = run_sql(dsn, "select id, username, username_lowercase, token_count from auth.users")
    service = Service(make_settings(dsn, smtp.port)).start()
    try:
        with service.client() as client:
            for username, password, *_ in ACCOUNTS:
                r = client.post(
                    "/refresh_token", json={"username": username.lower(), "password": password}
                )
                assert r.status_code == 200, (username, r.text)
                claims = jwt.decode(
                    r.json()["access_token"], SECRET, algorithms=["HS256"], audience="authenticated"
                )
                assert claims["username"] == username
            bob = client.post("/login", json={"username": "bob@example.com", "password": "bob42"})
            assert bob.status_code == 200, bob.text
            bob_claims = jwt.decode(
                bob.json()["access_token"], SECRET, algorithms=["HS256"], audience="authenticated"
            )
            assert bob_claims["count"] == 3
            assert (
                client.post("/login", json={"username": "alice", "password": "wrong1"}).status_code
                == 401
            )
            # Sign-up continues the original's id sequence and uniqueness rules.
            r = client.post("/users", json={"username": "ALICE", "password": "new password"})
            assert r.status_code == 409
            r = client.post("/users", json={"username": "dave", "password": "new password"})
            assert r.status_code == 201, r.text
            dave = run_sql(dsn, "select id from auth.users where username = 'dave'")[0][0]
            assert dave > max(row["id"] for row in before)
    finally:
        service.stop()

    after = run_sql(
        dsn,
        "select id, username, username_lowercase, token_count from auth.users"
        " where username <> 'dave'",
    )
    assert sorted(map(tuple, after)) == sorted(map(tuple, before))
    emails = dict(run_sql(dsn, "select username, email from auth.users"))
    assert emails["Alice"] == "alice@example.com"  # lowercased in place
    assert emails["carol"] is None  # the original stored '' for no email

    for username, password, _, rounds, *_ in ACCOUNTS:
        now = stored_hash(dsn, username)
        assert bcrypt.checkpw(password.encode(), now.encode())
        if rounds == 10:
            assert now.startswith("$2b$04$"), (username, now)
        else:  # already at the configured cost: left alone
            assert now == node_database[username]


def test_adopted_user_keeps_tokens_of_the_node_original(dsn, smtp, node_database):
    service = Service(make_settings(dsn, smtp.port)).start()
    now = int(time.time())
    node_token = jwt.encode(
        {"aud": "bob", "sub": "access", "count": 3, "role": "bob", "exp": now + 600},
        SECRET,
        "HS256",
    )
    try:
        with service.client() as client:
            r = client.post("/refresh_token", headers={"Authorization": f"Bearer {node_token}"})
            assert r.status_code == 200, r.text
            claims = jwt.decode(
                r.json()["access_token"], SECRET, algorithms=["HS256"], audience="authenticated"
            )
            assert claims["username"] == "bob" and claims["count"] == 3
            assert claims["role"] == "normal_user"
    finally:
        service.stop()


def test_adoption_can_change_password_and_reset(dsn, smtp, node_database):
    service = Service(make_settings(dsn, smtp.port)).start()
    try:
        with service.client() as client:
            r = client.post(
                "/change_password",
                json={
                    "username": "Alice",
                    "current_password": "alicepass1",
                    "new_password": "a much longer one",
                    "new_password_confirm": "a much longer one",
                },
            )
            assert r.status_code == 200, r.text
            assert client.post("/forgot_password", json={"username": "bob"}).status_code == 200
            [mail] = smtp.mailbox.wait_for("bob@example.com")
            [token] = JWT.findall(body_text(mail))
            new = "bob's new password"
            r = client.post(
                "/change_password",
                json={
                    "username": "bob",
                    "reset_token": token,
                    "new_password": new,
                    "new_password_confirm": new,
                },
            )
            assert r.status_code == 200, r.text
            r = client.post("/login", json={"username": "bob", "password": new})
            assert r.status_code == 200, r.text
            r = client.post("/login", json={"username": "bob", "password": "bob42"})
            assert r.status_code == 401, r.text
            r = client.post("/login", json={"username": "Alice", "password": "a much longer one"})
            assert r.status_code == 200, r.text
    finally:
        service.stop()
    counts = dict(run_sql(dsn, "select username, token_count from auth.users"))
    assert counts == {"Alice": 1, "bob": 4, "carol": 0}  # each change moved its count on once
