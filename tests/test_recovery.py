"""Forgotten password and username: equal answers, mail only for real accounts, one-time resets."""

from __future__ import annotations

import re
import time
from email.message import EmailMessage

import httpx
import jwt
import pytest

from .support import (
    SECRET,
    Service,
    body_text,
    make_settings,
    run_sql,
    settle_detached_lookups,
    sign_up,
    wait_until,
)

PASSWORD = "correct horse"
NEW = "brand new password"
JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


def reset_token_from(mail: EmailMessage) -> str:
    found = JWT.findall(body_text(mail))
    assert len(found) == 1, body_text(mail)
    return found[0]


def reset_mail(smtp, address: str, count: int = 2) -> EmailMessage:
    """The newest reset mail to `address` (after the welcome mail)."""
    mails = smtp.mailbox.wait_for(address, count=count)
    resets = [m for m in mails if "reset" in m["Subject"].lower()]
    assert resets, [m["Subject"] for m in mails]
    return resets[-1]


def reset(client: httpx.Client, username: str, token: str, new: str = NEW) -> httpx.Response:
    return client.post(
        "/change_password",
        json={
            "username": username,
            "reset_token": token,
            "new_password": new,
            "new_password_confirm": new,
        },
    )


def outbox(dsn: str) -> list[tuple[str, str]]:
    return [
        tuple(row) for row in run_sql(dsn, "select kind, recipient from auth.outbox order by id")
    ]


def all_sent(dsn: str) -> bool:
    return run_sql(dsn, "select count(*) from auth.outbox where sent_at is null")[0][0] == 0


def test_forgot_password_answers_the_same_and_mails_only_real_accounts(client, smtp, dsn):
    sign_up(client, "alice", "alice@example.com")
    sign_up(client, "nomail")
    smtp.mailbox.wait_for("alice@example.com")
    before = len(smtp.mailbox.messages)

    def send() -> list[httpx.Response]:
        return [
            client.post("/forgot_password", json={"username": "nobody"}),
            client.post("/forgot_password", data={"username": "nomail"}),
            client.post("/forgot_password", json={"username": "ALICE"}),
        ]

    # Returns once all three lookups, run after the answers, have ended.
    unknown, without_email, known = settle_detached_lookups(dsn, send, lookups=3)
    for r in (unknown, without_email, known):
        assert r.status_code == 200, r.text
        assert r.json() == {"message": "Password reset email sent"}
    assert unknown.content == known.content == without_email.content
    assert outbox(dsn) == [
        ("welcome", "alice@example.com"),
        ("reset_password", "alice@example.com"),
    ]
    mail = reset_mail(smtp, "alice@example.com")
    assert "alice" in body_text(mail)
    wait_until(lambda: all_sent(dsn))  # delivered once marked sent
    assert len(smtp.mailbox.messages) == before + 1
    assert all(m["To"] == "alice@example.com" for m in smtp.mailbox.messages)


def test_forgot_username_answers_the_same_and_mails_only_real_accounts(client, smtp, dsn):
    sign_up(client, "Alice", "alice@example.com")
    smtp.mailbox.wait_for("alice@example.com")

    def send() -> list[httpx.Response]:
        return [
            client.post("/forgot_username", json={"email": "nobody@example.com"}),
            client.post("/forgot_username", data={"email": "ALICE@example.com"}),
        ]

    unknown, known = settle_detached_lookups(dsn, send, lookups=2)
    for r in (unknown, known):
        assert r.status_code == 200, r.text
        assert r.json() == {"message": "Username Email sent"}
    assert unknown.content == known.content
    assert outbox(dsn) == [
        ("welcome", "alice@example.com"),
        ("forgot_username", "alice@example.com"),
    ]
    mails = smtp.mailbox.wait_for("alice@example.com", count=2)
    assert "Alice" in body_text(mails[-1])
    wait_until(lambda: all_sent(dsn))
    assert smtp.mailbox.to("nobody@example.com") == []
    assert len(smtp.mailbox.messages) == 2


@pytest.mark.parametrize(
    ("path", "body"),
    [("/forgot_password", {}), ("/forgot_username", {"email": "nope"}), ("/forgot_username", {})],
)
def test_recovery_refuses_bad_bodies(client, path, body):
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["errors"]


def test_reset_token_claims(client, smtp, dsn):
    sign_up(client, "alice", "alice@example.com")
    client.post("/forgot_password", json={"username": "alice"})
    token = reset_token_from(reset_mail(smtp, "alice@example.com"))
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["typ"] == "reset"
    assert "role" not in claims  # PostgREST can never take it as an access token
    assert claims["sub"] == run_sql(dsn, "select uid::text from auth.users")[0][0]
    assert claims["exp"] == claims["iat"] + 3600
    assert claims["count"] == 0


def test_reset_token_works_once(client, smtp, dsn):
    old = sign_up(client, "alice", "alice@example.com")
    client.post("/forgot_password", json={"username": "alice"})
    token = reset_token_from(reset_mail(smtp, "alice@example.com"))
    r = reset(client, "alice", token)
    assert r.status_code == 200, r.text
    new = r.json()
    assert (
        jwt.decode(new["access_token"], SECRET, algorithms=["HS256"], audience="authenticated")[
            "count"
        ]
        == 1
    )
    fresh = {"Authorization": f"Bearer {new['access_token']}"}
    assert client.get("/user", headers=fresh).is_success
    second = reset(client, "alice", token, "another password")
    assert second.status_code == 401, second.text
    assert second.json()["code"] == "invalid_reset_token"
    assert "WWW-Authenticate" in second.headers
    # The first use set the password; the old one and its tokens are gone.
    login = {"username": "alice", "password": NEW}
    assert client.post("/refresh_token", json=login).status_code == 200
    login["password"] = PASSWORD
    assert client.post("/refresh_token", json=login).status_code == 401
    stale = {"Authorization": f"Bearer {old['access_token']}"}
    assert client.get("/user", headers=stale).status_code == 401


def test_reset_token_dies_when_the_password_changes_otherwise(client, smtp):
    sign_up(client, "alice", "alice@example.com")
    client.post("/forgot_password", json={"username": "alice"})
    token = reset_token_from(reset_mail(smtp, "alice@example.com"))
    r = client.post(
        "/change_password",
        json={
            "username": "alice",
            "current_password": PASSWORD,
            "new_password": NEW,
            "new_password_confirm": NEW,
        },
    )
    assert r.status_code == 200, r.text
    assert reset(client, "alice", token, "another password").status_code == 401


def test_reset_token_is_for_its_own_account_only(client, smtp, dsn):
    sign_up(client, "alice", "alice@example.com")
    sign_up(client, "bob", "bob@example.com")
    client.post("/forgot_password", json={"username": "alice"})
    token = reset_token_from(reset_mail(smtp, "alice@example.com"))
    assert reset(client, "bob", token).status_code == 401
    assert reset(client, "nobody", token).status_code == 401
    assert run_sql(dsn, "select sum(token_count) from auth.users")[0][0] == 0


def test_reset_refuses_forged_and_access_tokens(client):
    body = sign_up(client, "alice")
    claims = jwt.decode(
        body["access_token"], SECRET, algorithms=["HS256"], audience="authenticated"
    )
    now = int(time.time())
    expired = jwt.encode(
        {"sub": claims["sub"], "count": 0, "typ": "reset", "iat": now - 7200, "exp": now - 3600},
        SECRET,
        "HS256",
    )
    forged = jwt.encode(
        {"sub": claims["sub"], "count": 0, "typ": "reset", "exp": now + 60}, "y" * 40, "HS256"
    )
    for token in (body["access_token"], expired, forged, "garbage"):
        r = reset(client, "alice", token)
        assert r.status_code == 401, r.text
        assert r.json()["code"] == "invalid_reset_token"


def test_reset_confirm_mismatch_leaves_the_token_usable(client, smtp):
    sign_up(client, "alice", "alice@example.com")
    client.post("/forgot_password", json={"username": "alice"})
    token = reset_token_from(reset_mail(smtp, "alice@example.com"))
    r = client.post(
        "/change_password",
        data={
            "username": "alice",
            "reset_token": token,
            "new_password": NEW,
            "new_password_confirm": NEW + "!",
        },
    )
    assert r.status_code == 400
    assert [e["field"] for e in r.json()["errors"]] == ["new_password_confirm"]
    assert reset(client, "alice", token).status_code == 200


def test_reset_link_from_url_template(dsn, smtp):
    settings = make_settings(
        dsn,
        smtp.port,
        app_name="Theories",
        email={"reset_url": "https://app.example/reset?token={token}&user={username}"},
    )
    service = Service(settings).start()
    try:
        with service.client() as client:
            sign_up(client, "alice", "alice@example.com")
            client.post("/forgot_password", json={"username": "alice"})
            mail = reset_mail(smtp, "alice@example.com")
            text = body_text(mail)
            assert "Theories" in mail["Subject"]
            assert re.search(r"https://app\.example/reset\?token=eyJ\S+&user=alice", text), text
            assert reset(client, "alice", reset_token_from(mail)).status_code == 200
    finally:
        service.stop()
