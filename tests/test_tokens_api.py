"""Sign-in, refresh, the caller's endpoints, JWKS, health, Node-original tokens and rate limits."""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .support import SECRET, Service, body_text, make_settings, run_sql, sign_up

PASSWORD = "correct horse"


def claims_of(body: dict[str, Any]) -> dict[str, Any]:
    return jwt.decode(body["access_token"], SECRET, algorithms=["HS256"], audience="authenticated")


def bearer(body_or_token: dict[str, Any] | str) -> dict[str, str]:
    token = body_or_token if isinstance(body_or_token, str) else body_or_token["access_token"]
    return {"Authorization": f"Bearer {token}"}


def assert_401(r: httpx.Response, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    body = r.json()
    assert body["status"] == 401 and body["statusText"] == "Unauthorized"
    if code is not None:
        assert body["code"] == code, body
    return body


# -- claims -------------------------------------------------------------------------------------


def test_access_token_claims(client, dsn):
    before = int(time.time())
    body = sign_up(client, "Alice", "alice@example.com")
    claims = claims_of(body)
    user_uid, count = run_sql(dsn, "select uid::text, token_count from auth.users")[0]
    session_id = run_sql(dsn, "select id::text from auth.sessions")[0][0]
    assert claims["iss"] == "postgrest-auth"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 604800
    assert claims["sub"] == user_uid
    assert claims["role"] == "normal_user"
    assert claims["username"] == "Alice"
    assert claims["email"] == "alice@example.com"
    assert claims["count"] == count == 0
    assert claims["sid"] == session_id
    assert claims["typ"] == "access"
    assert len(claims["jti"]) >= 16
    r = client.post("/login", json={"username": "alice", "password": PASSWORD})
    other = claims_of(r.json())
    assert other["jti"] != claims["jti"]
    assert other["sid"] != claims["sid"]


def test_claims_follow_payload_settings(dsn, smtp):
    settings = make_settings(dsn, smtp.port, payload={"exp": 120, "iss": "https://app.example"})
    service = Service(settings).start()
    try:
        with service.client() as client:
            body = sign_up(client)
    finally:
        service.stop()
    claims = claims_of(body)
    assert claims["iss"] == "https://app.example"
    assert claims["exp"] - claims["iat"] == 120
    assert body["expires_in"] == 120


def test_count_claim_is_the_real_token_count(client, dsn):
    sign_up(client)
    run_sql(dsn, "update auth.users set token_count = 7")
    r = client.post("/refresh_token", json={"username": "alice", "password": PASSWORD})
    assert claims_of(r.json())["count"] == 7


# -- /refresh_token and /login ------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["json", "data"])
def test_refresh_token_with_password(client, encoding):
    sign_up(client)
    r = client.post("/refresh_token", **{encoding: {"username": "ALICE", "password": PASSWORD}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"access_token", "token_type", "expires_in", "refresh_token"} <= set(body)
    assert claims_of(body)["username"] == "alice"


def test_wrong_password_and_unknown_user_answer_the_same(client):
    sign_up(client)
    wrong = client.post("/refresh_token", json={"username": "alice", "password": "not it at all"})
    unknown = client.post("/refresh_token", json={"username": "nobody", "password": PASSWORD})
    assert_401(wrong, "invalid_credentials")
    assert_401(unknown, "invalid_credentials")
    assert wrong.json() == unknown.json()
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]


def test_refresh_with_bearer_access_token_keeps_the_session(client):
    first = claims_of(sign_up(client))
    second = client.post("/login", json={"username": "alice", "password": PASSWORD}).json()
    r = client.post("/refresh_token", headers=bearer(second))
    assert r.status_code == 200, r.text
    again = claims_of(r.json())
    assert again["sid"] == claims_of(second)["sid"] != first["sid"]
    assert again["jti"] != claims_of(second)["jti"]
    assert again["typ"] == "access"
    assert "refresh_token" not in r.json()  # the session keeps its token


def test_refresh_with_refresh_token_field(client):
    body = sign_up(client)
    for encoding in ("json", "data"):
        r = client.post("/refresh_token", **{encoding: {"refresh_token": body["refresh_token"]}})
        assert r.status_code == 200, r.text
        assert claims_of(r.json())["sid"] == claims_of(body)["sid"]


def test_refresh_with_unknown_refresh_token(client):
    sign_up(client)
    assert_401(client.post("/refresh_token", json={"refresh_token": "x" * 43}), "session_ended")


def test_refresh_with_nothing(client):
    assert_401(client.post("/refresh_token"), "missing_credentials")
    assert_401(client.post("/refresh_token", json={}), "missing_credentials")
    assert_401(client.post("/refresh_token", json={"username": "alice"}), "missing_credentials")


def test_refresh_refuses_reset_token_as_bearer(client, dsn, smtp):
    sign_up(client, email="alice@example.com")
    assert client.post("/forgot_password", json={"username": "alice"}).status_code == 200
    mails = smtp.mailbox.wait_for("alice@example.com", count=2)
    [mail] = [m for m in mails if "reset" in m["Subject"].lower()]
    [token] = re.findall(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", body_text(mail))
    assert jwt.decode(token, SECRET, algorithms=["HS256"])["typ"] == "reset"
    assert_401(client.post("/refresh_token", headers=bearer(token)), "invalid_token")
    assert_401(client.get("/user", headers=bearer(token)), "invalid_token")


def forged(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm)


def test_refresh_refuses_bad_bearer_tokens(client):
    good = claims_of(sign_up(client))
    now = int(time.time())
    bad = [
        "not-a-jwt",
        forged(good, "another-secret-that-is-long-enough-to-sign"),
        forged({**good, "iat": now - 100, "exp": now - 10}),
        forged({k: v for k, v in good.items() if k != "exp"}),
        forged({**good, "count": "0"}),
        jwt.encode(good, None, algorithm="none"),
    ]
    for token in bad:
        assert_401(client.post("/refresh_token", headers=bearer(token)), "invalid_token")
        assert_401(client.get("/user", headers=bearer(token)), "invalid_token")


def test_login_by_username_or_email(client):
    sign_up(client, "alice", "alice@example.com")
    for login_name in ("alice", "ALICE", "alice@example.com", "Alice@Example.COM"):
        r = client.post("/login", json={"username": login_name, "password": PASSWORD})
        assert r.status_code == 200, (login_name, r.text)
        assert claims_of(r.json())["username"] == "alice"
    r = client.post("/login", data={"username": "alice@example.com", "password": PASSWORD})
    assert r.status_code == 200
    wrong = {"username": "alice@example.com", "password": "nope1234"}
    assert_401(client.post("/login", json=wrong))
    assert_401(client.post("/login", json={"username": "bob@example.com", "password": PASSWORD}))
    assert client.post("/login", json={"username": "alice"}).status_code == 400


def test_login_records_sign_in(client, dsn):
    sign_up(client)
    run_sql(dsn, "update auth.users set last_sign_in_at = null")
    client.post("/login", json={"username": "alice", "password": PASSWORD})
    assert run_sql(dsn, "select last_sign_in_at is not null from auth.users")[0][0]


# -- /user, /sessions, /logout ------------------------------------------------------------------


def test_user_endpoint(client, dsn):
    body = sign_up(client, "Alice", "alice@example.com")
    r = client.get("/user", headers=bearer(body))
    assert r.status_code == 200, r.text
    user = r.json()
    assert user["id"] == run_sql(dsn, "select uid::text from auth.users")[0][0]
    assert user["username"] == "Alice"
    assert user["email"] == "alice@example.com"
    assert user["session_id"] == claims_of(body)["sid"]
    assert user["created_at"] and user["last_sign_in_at"]
    assert "password" not in user and "token_count" not in user
    assert_401(client.get("/user"), "missing_credentials")


def test_sessions_list_and_end_one(client):
    first = sign_up(client)
    second = client.post("/login", json={"username": "alice", "password": PASSWORD}).json()
    r = client.get("/sessions", headers=bearer(second))
    assert r.status_code == 200, r.text
    sessions = r.json()
    assert {s["id"] for s in sessions} == {claims_of(first)["sid"], claims_of(second)["sid"]}
    assert [s["current"] for s in sessions if s["id"] == claims_of(second)["sid"]] == [True]
    assert all(s["address"] == "127.0.0.1" for s in sessions)
    assert all(s["user_agent"].startswith("python-httpx") for s in sessions)

    r = client.delete(f"/sessions/{claims_of(first)['sid']}", headers=bearer(second))
    assert r.status_code == 204, r.text
    assert_401(client.get("/user", headers=bearer(first)), "token_revoked")
    assert_401(client.post("/refresh_token", headers=bearer(first)), "token_revoked")
    assert_401(client.post("/refresh_token", json={"refresh_token": first["refresh_token"]}))
    assert client.get("/user", headers=bearer(second)).status_code == 200
    assert len(client.get("/sessions", headers=bearer(second)).json()) == 1
    # Gone already, unknown, or not a UUID.
    again = client.delete(f"/sessions/{claims_of(first)['sid']}", headers=bearer(second))
    assert again.status_code == 404 and again.json()["code"] == "session_not_found"
    unknown = "00000000-0000-0000-0000-000000000000"
    assert client.delete(f"/sessions/{unknown}", headers=bearer(second)).status_code == 404
    assert client.delete("/sessions/not-a-uuid", headers=bearer(second)).status_code == 400
    assert_401(client.get("/sessions"))


def test_cannot_end_another_users_session(client):
    alice = sign_up(client, "alice")
    bob = sign_up(client, "bob")
    r = client.delete(f"/sessions/{claims_of(alice)['sid']}", headers=bearer(bob))
    assert r.status_code == 404
    assert client.get("/user", headers=bearer(alice)).status_code == 200


def test_logout_ends_this_session_only(client, dsn):
    first = sign_up(client)
    second = client.post("/login", json={"username": "alice", "password": PASSWORD}).json()
    r = client.post("/logout", headers=bearer(first))
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Signed out"}
    revoked = dict(run_sql(dsn, "select token_hash, revoked_at is not null from auth.sessions"))
    assert revoked == {
        hashlib.sha256(first["refresh_token"].encode()).digest(): True,
        hashlib.sha256(second["refresh_token"].encode()).digest(): False,
    }
    assert_401(client.get("/user", headers=bearer(first)))
    assert_401(client.post("/refresh_token", json={"refresh_token": first["refresh_token"]}))
    assert_401(client.post("/logout", headers=bearer(first)))
    assert client.get("/user", headers=bearer(second)).status_code == 200
    assert_401(client.post("/logout"), "missing_credentials")


@pytest.mark.parametrize("encoding", ["json", "data"])
def test_logout_global_ends_every_session(client, encoding):
    first = sign_up(client)
    second = client.post("/login", json={"username": "alice", "password": PASSWORD}).json()
    r = client.post("/logout", headers=bearer(first), **{encoding: {"scope": "global"}})
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Signed out everywhere"}
    for body in (first, second):
        assert_401(client.get("/user", headers=bearer(body)))
        assert_401(client.post("/refresh_token", headers=bearer(body)))
        assert_401(client.post("/refresh_token", json={"refresh_token": body["refresh_token"]}))
    again = client.post("/login", json={"username": "alice", "password": PASSWORD})
    assert again.status_code == 200


def test_logout_refuses_unknown_scope(client):
    body = sign_up(client)
    r = client.post("/logout", headers=bearer(body), json={"scope": "everything"})
    assert r.status_code == 400
    assert client.get("/user", headers=bearer(body)).status_code == 200


# -- JWKS and health ----------------------------------------------------------------------------


def test_jwks_never_publishes_the_hs_secret(client):
    r = client.get("/.well-known/jwks.json")
    assert r.status_code == 200
    assert r.json() == {"keys": []}
    assert SECRET not in r.text


def test_jwks_publishes_asymmetric_keys_that_verify_tokens(dsn, smtp, tmp_path):
    private = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "es256.pem"
    pem.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    settings = make_settings(
        dsn,
        smtp.port,
        jwt={"keys": [{"kid": "k1", "algorithm": "ES256", "private_key_file": str(pem)}]},
    )
    service = Service(settings).start()
    try:
        with service.client() as client:
            jwks = client.get("/.well-known/jwks.json").json()
            body = sign_up(client)
            assert client.get("/user", headers=bearer(body)).status_code == 200
            assert client.post("/refresh_token", headers=bearer(body)).status_code == 200
    finally:
        service.stop()
    [key] = jwks["keys"]
    assert key["kid"] == "k1" and key["alg"] == "ES256" and key["kty"] == "EC"
    assert "d" not in key  # public only
    assert jwt.get_unverified_header(body["access_token"])["kid"] == "k1"
    verifying = jwt.PyJWK(key).key
    claims = jwt.decode(
        body["access_token"], verifying, algorithms=["ES256"], audience="authenticated"
    )
    assert claims["role"] == "normal_user"


def test_health(client):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "up"}


# -- tokens of the Node original ----------------------------------------------------------------


def node_token(username: str, count: int, role: str = "alice") -> str:
    """What the Node original signed: jwt.sign({aud, sub: 'access', count, role}, secret, {exp})."""
    now = int(time.time())
    return jwt.encode(
        {
            "aud": username,
            "sub": "access",
            "count": count,
            "role": role,
            "iat": now,
            "exp": now + 3600,
        },
        SECRET,
        "HS256",
    )


def test_node_original_token_is_exchanged(client, dsn):
    sign_up(client, "alice", "alice@example.com")
    run_sql(dsn, "update auth.users set adopted_at = now()")  # as if adopted from Node
    r = client.post("/refresh_token", headers=bearer(node_token("alice", 0)))
    assert r.status_code == 200, r.text
    body = r.json()
    claims = claims_of(body)
    assert claims["sub"] == run_sql(dsn, "select uid::text from auth.users")[0][0]
    assert claims["typ"] == "access" and claims["role"] == "normal_user"
    assert claims["sid"]
    assert claims["aud"] == "authenticated"  # GoTrue's, no longer the Node username
    assert client.get("/user", headers=bearer(body)).status_code == 200
    assert client.post("/refresh_token", json={"refresh_token": body["refresh_token"]}).is_success


def test_node_original_token_is_refused_for_an_account_not_adopted(client, dsn):
    """A deleted account frees its username: a Node token must not reach whoever takes it."""
    sign_up(client, "alice", "alice@example.com")
    assert_401(client.post("/refresh_token", headers=bearer(node_token("alice", 0))))


def test_node_original_token_with_stale_count_is_refused(client, dsn):
    sign_up(client)
    run_sql(dsn, "update auth.users set adopted_at = now(), token_count = 1")
    assert_401(client.post("/refresh_token", headers=bearer(node_token("alice", 0))))
    assert_401(client.post("/refresh_token", headers=bearer(node_token("nobody", 0))))
    other_secret = jwt.encode(
        {"aud": "alice", "sub": "access", "count": 1, "exp": int(time.time()) + 60},
        "x" * 40,
        "HS256",
    )
    assert_401(client.post("/refresh_token", headers=bearer(other_secret)))


# -- rate limits --------------------------------------------------------------------------------


def limited_service(dsn: str, smtp_port: int, **limits: Any) -> Service:
    return Service(make_settings(dsn, smtp_port, rate_limit=limits)).start()


def assert_429(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.json()["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 61


def test_rate_limit_per_address(dsn, smtp):
    service = limited_service(dsn, smtp.port, per_address={"requests": 3, "window": 60})
    try:
        with service.client() as client:
            sign_up(client)
            for _ in range(3):
                r = client.post("/refresh_token", json={"username": "alice", "password": PASSWORD})
                assert r.status_code == 200, r.text
            login = {"username": "alice", "password": PASSWORD}
            assert_429(client.post("/refresh_token", json=login))
            assert_429(client.post("/login", json={"username": "bob", "password": PASSWORD}))
    finally:
        service.stop()


def test_rate_limit_per_account_failures(dsn, smtp):
    service = limited_service(dsn, smtp.port, per_account={"requests": 2, "window": 60})
    try:
        with service.client() as client:
            sign_up(client, "alice")
            sign_up(client, "bob")
            for name in ("alice", "ghost"):
                for _ in range(2):
                    r = client.post("/login", json={"username": name, "password": "wrong pass"})
                    assert r.status_code == 401, r.text
                # Even the right password waits now; and an unknown name looks the same.
                assert_429(client.post("/login", json={"username": name, "password": PASSWORD}))
                assert_429(
                    client.post(
                        "/refresh_token", json={"username": name.upper(), "password": PASSWORD}
                    )
                )
            # Other accounts are untouched.
            r = client.post("/login", json={"username": "bob", "password": PASSWORD})
            assert r.status_code == 200, r.text
    finally:
        service.stop()


def test_successful_logins_do_not_count_against_the_account(dsn, smtp):
    service = limited_service(dsn, smtp.port, per_account={"requests": 2, "window": 60})
    try:
        with service.client() as client:
            sign_up(client)
            for _ in range(4):
                r = client.post("/login", json={"username": "alice", "password": PASSWORD})
                assert r.status_code == 200, r.text
    finally:
        service.stop()
