"""POST /users, /change_password (current password) and /change_email against the real service."""

from __future__ import annotations

from typing import Any

import bcrypt
import httpx
import jwt
import pytest

from .support import SECRET, body_text, run_sql

PASSWORD = "correct horse"


def claims_of(body: dict[str, Any]) -> dict[str, Any]:
    return jwt.decode(body["access_token"], SECRET, algorithms=["HS256"], audience="authenticated")


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The original's production error shape, always JSON."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"status", "statusText", "code", "message", "errors"}, body
    assert body["status"] == status
    assert isinstance(body["statusText"], str) and body["statusText"]
    assert isinstance(body["message"], str) and body["message"]
    if code is not None:
        assert body["code"] == code, body
    for error in body["errors"]:
        assert set(error) == {"field", "location", "messages"}, error
        assert isinstance(error["field"], str)
        assert error["messages"] and all(isinstance(m, str) for m in error["messages"])
    return body


def fields(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body["errors"]}


def sign_up(
    client: httpx.Client,
    username: str = "alice",
    email: str | None = None,
    password: str = PASSWORD,
) -> dict[str, Any]:
    data = {"username": username, "password": password}
    if email is not None:
        data["email"] = email
    r = client.post("/users", json=data)
    assert r.status_code == 201, r.text
    return r.json()


def login(client: httpx.Client, username: str, password: str) -> httpx.Response:
    return client.post("/refresh_token", json={"username": username, "password": password})


# -- sign-up ------------------------------------------------------------------------------------


def test_signup_json_answers_tokens_and_welcome_mail(client, smtp, dsn):
    r = client.post(
        "/users", json={"username": "Alice", "password": PASSWORD, "email": "Alice@Example.com"}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 604800
    assert isinstance(body["refresh_token"], str) and len(body["refresh_token"]) >= 32
    claims = claims_of(body)
    assert claims["username"] == "Alice"
    assert claims["email"] == "alice@example.com"
    [row] = run_sql(dsn, "select uid::text, username_lowercase, email, password from auth.users")
    assert claims["sub"] == row["uid"]
    assert row["username_lowercase"] == "alice"
    assert row["email"] == "alice@example.com"
    assert row["password"].startswith("$2b$04$")
    mail = smtp.mailbox.wait_for("alice@example.com")
    assert "Alice" in body_text(mail[0])


def test_signup_form_encoded(client):
    r = client.post("/users", data={"username": "bob", "password": PASSWORD})
    assert r.status_code == 201, r.text
    assert claims_of(r.json())["username"] == "bob"


def test_signup_without_email_has_no_email_claim(client, smtp):
    body = sign_up(client, "noemail", email="")
    assert "email" not in claims_of(body)
    assert smtp.mailbox.messages == []


@pytest.mark.parametrize(
    "username", ["ab", "a" * 21, "with space", "dash-name", "ünïcode", "semi;colon", ""]
)
def test_signup_refuses_bad_username(client, dsn, username):
    r = client.post("/users", json={"username": username, "password": PASSWORD})
    assert "username" in fields(assert_error(r, 400, "validation_failed"))
    assert run_sql(dsn, "select count(*) from auth.users")[0][0] == 0


def test_signup_accepts_username_at_pattern_bounds(client):
    sign_up(client, "abc")
    sign_up(client, "A1" * 10)


def test_signup_refuses_short_password(client):
    r = client.post("/users", json={"username": "alice", "password": "1234567"})
    body = assert_error(r, 400, "validation_failed")
    assert fields(body) == {"password"}


@pytest.mark.parametrize("password", ["x" * 73, "é" * 37, "🔑" * 19])
def test_signup_refuses_password_over_72_bytes(client, dsn, password):
    assert len(password.encode()) > 72
    r = client.post("/users", json={"username": "alice", "password": password})
    body = assert_error(r, 400, "validation_failed")
    assert fields(body) == {"password"}
    assert "72" in body["errors"][0]["messages"][0]
    assert run_sql(dsn, "select count(*) from auth.users")[0][0] == 0


def test_72_byte_password_is_whole_never_truncated(client):
    password = "p" * 72
    sign_up(client, "alice", password=password)
    assert login(client, "alice", password).status_code == 200
    # One byte more is a different password; bcrypt would have cut it to the same 72.
    assert login(client, "alice", password + "q").status_code == 401
    assert login(client, "alice", password[:71]).status_code == 401


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "a b@example.com"])
def test_signup_refuses_bad_email(client, email):
    r = client.post("/users", json={"username": "alice", "password": PASSWORD, "email": email})
    assert fields(assert_error(r, 400, "validation_failed")) == {"email"}


def test_signup_reports_every_missing_field(client):
    body = assert_error(client.post("/users", json={}), 400, "validation_failed")
    assert fields(body) == {"username", "password"}


def test_signup_username_taken_without_regard_to_case(client, dsn):
    sign_up(client, "alice")
    r = client.post("/users", json={"username": "ALICE", "password": PASSWORD})
    body = assert_error(r, 409, "username_taken")
    assert fields(body) == {"username"}
    assert run_sql(dsn, "select count(*) from auth.users")[0][0] == 1


def test_signup_email_taken(client):
    sign_up(client, "alice", email="shared@example.com")
    r = client.post(
        "/users", json={"username": "bob", "password": PASSWORD, "email": "SHARED@example.com"}
    )
    assert fields(assert_error(r, 409, "email_taken")) == {"email"}


def test_signup_refuses_text_plain(client):
    r = client.post(
        "/users",
        content=b"username=alice&password=correct+horse",
        headers={"content-type": "text/plain"},
    )
    assert_error(r, 415)


def test_signup_refuses_body_over_64_kib(client, dsn):
    r = client.post("/users", json={"username": "alice", "password": PASSWORD, "x": "y" * 70000})
    assert_error(r, 413)
    assert run_sql(dsn, "select count(*) from auth.users")[0][0] == 0


def test_body_over_limit_without_content_length_is_refused(client):
    def chunks():  # chunked transfer: no Content-Length to trust
        for _ in range(20):
            yield b"x" * 4096

    r = client.post("/users", content=chunks(), headers={"content-type": "application/json"})
    assert_error(r, 413)


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"string"', b"\xff\xfe"])
def test_signup_refuses_invalid_json(client, raw):
    r = client.post("/users", content=raw, headers={"content-type": "application/json"})
    assert_error(r, 400)


def test_signup_refuses_wrong_types(client):
    r = client.post("/users", json={"username": 123, "password": ["x"]})
    assert fields(assert_error(r, 400, "validation_failed")) >= {"password"}


def test_errors_are_json_for_unknown_paths_and_methods(client):
    assert_error(client.get("/nowhere"), 404)
    assert_error(client.get("/users"), 405)


# -- change_password ----------------------------------------------------------------------------


def change_password(client: httpx.Client, **fields_: str) -> httpx.Response:
    return client.post("/change_password", json=fields_)


def test_change_password_with_current_password(client, smtp, dsn):
    old = sign_up(client, "alice", email="alice@example.com")
    r = change_password(
        client,
        username="alice",
        current_password=PASSWORD,
        new_password="new password 1",
        new_password_confirm="new password 1",
    )
    assert r.status_code == 200, r.text
    new = r.json()
    count = run_sql(dsn, "select token_count from auth.users")[0][0]
    assert count == 1
    assert claims_of(new)["count"] == count
    # Every older token dies, wherever it is shown.
    stale = {"Authorization": f"Bearer {old['access_token']}"}
    assert_error(client.post("/refresh_token", headers=stale), 401)
    assert_error(client.get("/user", headers=stale), 401)
    assert_error(client.post("/refresh_token", json={"refresh_token": old["refresh_token"]}), 401)
    # The new token and password work; the old password does not.
    fresh = {"Authorization": f"Bearer {new['access_token']}"}
    assert client.get("/user", headers=fresh).status_code == 200
    assert client.post("/refresh_token", headers=fresh).status_code == 200
    assert login(client, "alice", "new password 1").status_code == 200
    assert login(client, "alice", PASSWORD).status_code == 401
    mails = smtp.mailbox.wait_for("alice@example.com", count=2)
    assert any("password" in m["Subject"].lower() and "changed" in m["Subject"] for m in mails)


def test_change_password_form_encoded(client, dsn):
    sign_up(client, "alice")
    user = "select password, token_count from auth.users where username = 'alice'"
    before = run_sql(dsn, user)[0]
    r = client.post(
        "/change_password",
        data={
            "username": "alice",
            "current_password": PASSWORD,
            "new_password": "new password 1",
            "new_password_confirm": "new password 1",
        },
    )
    assert r.status_code == 200, r.text
    after = run_sql(dsn, user)[0]
    assert after["token_count"] == before["token_count"] + 1
    assert after["password"] != before["password"]
    assert bcrypt.checkpw(b"new password 1", after["password"].encode())


def test_change_password_confirm_mismatch_changes_nothing(client, dsn):
    old = sign_up(client, "alice")
    before = run_sql(dsn, "select password, token_count from auth.users")[0]
    r = change_password(
        client,
        username="alice",
        current_password=PASSWORD,
        new_password="new password 1",
        new_password_confirm="new password 2",
    )
    assert fields(assert_error(r, 400, "validation_failed")) == {"new_password_confirm"}
    after = run_sql(dsn, "select password, token_count from auth.users")[0]
    assert dict(after) == dict(before)
    assert login(client, "alice", PASSWORD).status_code == 200
    ok = client.get("/user", headers={"Authorization": f"Bearer {old['access_token']}"})
    assert ok.status_code == 200


def test_change_password_wrong_current_password(client, dsn):
    sign_up(client, "alice")
    r = change_password(
        client,
        username="alice",
        current_password="wrong password",
        new_password="new password 1",
        new_password_confirm="new password 1",
    )
    assert_error(r, 401, "invalid_credentials")
    assert "WWW-Authenticate" in r.headers
    assert run_sql(dsn, "select token_count from auth.users")[0][0] == 0


def test_change_password_refuses_bad_new_password(client):
    sign_up(client, "alice")
    for new in ("short", "x" * 73):
        r = change_password(
            client,
            username="alice",
            current_password=PASSWORD,
            new_password=new,
            new_password_confirm=new,
        )
        assert fields(assert_error(r, 400)) == {"new_password"}


@pytest.mark.parametrize("proof", [{}, {"current_password": PASSWORD, "reset_token": "x.y.z"}])
def test_change_password_needs_exactly_one_proof(client, proof):
    sign_up(client, "alice")
    r = change_password(
        client,
        username="alice",
        new_password="new password 1",
        new_password_confirm="new password 1",
        **proof,
    )
    assert_error(r, 400, "validation_failed")


# -- change_email -------------------------------------------------------------------------------


def test_change_email_tells_the_old_address(client, smtp, dsn):
    sign_up(client, "alice", email="old@example.com")
    smtp.mailbox.wait_for("old@example.com")  # the welcome mail
    r = client.post(
        "/change_email",
        json={"username": "alice", "password": PASSWORD, "email": "New@Example.com"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Email changed"}
    assert run_sql(dsn, "select email from auth.users")[0][0] == "new@example.com"
    mails = smtp.mailbox.wait_for("old@example.com", count=2)
    told = body_text(mails[-1])
    assert "new@example.com" in told and "old@example.com" in told
    token = login(client, "alice", PASSWORD).json()
    assert claims_of(token)["email"] == "new@example.com"


def test_change_email_form_encoded_for_user_without_email(client, dsn):
    sign_up(client, "alice")
    r = client.post(
        "/change_email", data={"username": "alice", "password": PASSWORD, "email": "a@example.com"}
    )
    assert r.status_code == 200, r.text
    assert run_sql(dsn, "select email from auth.users")[0][0] == "a@example.com"


def test_change_email_taken(client, dsn):
    sign_up(client, "alice", email="alice@example.com")
    sign_up(client, "bob", email="bob@example.com")
    r = client.post(
        "/change_email",
        json={"username": "bob", "password": PASSWORD, "email": "ALICE@example.com"},
    )
    assert fields(assert_error(r, 409, "email_taken")) == {"email"}
    assert run_sql(dsn, "select email from auth.users where username = 'bob'")[0][0] == (
        "bob@example.com"
    )


def test_change_email_wrong_password(client, dsn):
    sign_up(client, "alice", email="alice@example.com")
    r = client.post(
        "/change_email", json={"username": "alice", "password": "wrong pass", "email": "b@x.com"}
    )
    assert_error(r, 401, "invalid_credentials")
    assert run_sql(dsn, "select email from auth.users")[0][0] == "alice@example.com"


def test_change_email_refuses_bad_email(client):
    sign_up(client, "alice")
    r = client.post("/change_email", json={"username": "alice", "password": PASSWORD, "email": "x"})
    assert fields(assert_error(r, 400)) == {"email"}
