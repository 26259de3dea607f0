"""Signing in by mail (magic link and 6-digit code), recovery by mail, the verify endpoint's
link form with a redirect, the limits on codes, and the audit trail, against the real service,
PostgreSQL and SMTP. Addresses on special-use domains (.local, .test) throughout."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from .email_flows import (
    PASSWORD,
    assert_error,
    assert_session,
    audit_events,
    audit_text,
    claims_of,
    login,
    outbox,
    secret_to,
    services_on,
    sign_up,
    user_row,
)
from .support import run_sql, settle_detached_lookups

SIGN_IN = "sign-in link"


@pytest.fixture
def start_service(dsn, smtp):  # type: ignore[no-untyped-def]
    yield from services_on(dsn, smtp)


def otp(client: httpx.Client, email: str, **body: object) -> httpx.Response:
    return client.post("/otp", json={"email": email, **body})


def wrong_code(right: str) -> str:
    return f"{(int(right) + 1) % 10**6:06d}"


def test_magic_link_and_code_sign_an_existing_account_in(client, service, smtp, dsn):
    assert sign_up(client, "alice", "alice@corp.local").status_code == 201
    r = otp(client, "Alice@Corp.Local", create_user=False)
    assert r.status_code == 200 and r.json() == {"message": "Sign-in email sent"}, r.text

    mail = secret_to(smtp, "alice@corp.local", SIGN_IN)
    assert mail.type == "magiclink"
    body = assert_session(httpx.get(service.url + mail.path()))
    assert claims_of(body)["email"] == "alice@corp.local"
    me = client.get("/user", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["username"] == "alice", me.text
    # The mailbox is proven: the address counts as confirmed.
    assert user_row(dsn, "alice@corp.local")["email_confirmed_at"] is not None

    # The code of a second mail, with GoTrue's type "email"; the first mail's is spent.
    assert otp(client, "alice@corp.local", create_user=False).status_code == 200
    second = secret_to(smtp, "alice@corp.local", SIGN_IN, count=2)
    for type_ in ("signup", "recovery"):  # a code works only for what it was mailed for
        r = client.post(
            "/verify", json={"type": type_, "email": "alice@corp.local", "token": second.code}
        )
        assert_error(r, 401, "otp_expired")
    r = client.post(
        "/verify", json={"type": "email", "email": "alice@corp.local", "token": second.code}
    )
    assert_session(r)
    assert_error(
        client.post("/verify", json={"type": "magiclink", "token_hash": mail.token_hash}),
        401,
        "otp_expired",
    )

    methods = [d.get("method") for e, _, d in audit_events(dsn) if e == "signed_in"]
    assert methods == ["magiclink", "otp"]


def test_unknown_addresses_get_the_same_answer_and_an_account_only_with_create_user(
    client, smtp, dsn
):
    assert sign_up(client, "bob", "bob@example.test").status_code == 201

    def send() -> list[httpx.Response]:
        return [
            otp(client, "nobody@example.test", create_user=False),
            otp(client, "newcomer@example.test", data={"plan": "free"}),  # create_user: true
            otp(client, "bob@example.test", create_user=False),
        ]

    # Returns once the three lookups, run after the answers, have ended.
    answers = settle_detached_lookups(dsn, send, lookups=3)
    assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
    assert len({r.content for r in answers}) == 1
    assert user_row(dsn, "nobody@example.test") is None
    assert ("magic_link", "nobody@example.test") not in outbox(dsn)
    assert ("magic_link", "newcomer@example.test") in outbox(dsn)

    # The new account: an address, no username, no password.
    row = user_row(dsn, "newcomer@example.test")
    assert (row["username"], row["password"], row["email_confirmed_at"]) == (None, None, None)
    mail = secret_to(smtp, "newcomer@example.test", SIGN_IN)
    assert "Hello newcomer@example.test" in mail.text  # greeted by the address
    body = assert_session(
        client.post(
            "/verify",
            json={"type": "magiclink", "email": "newcomer@example.test", "token": mail.code},
        )
    )
    claims = claims_of(body)
    assert "username" not in claims and claims["email"] == "newcomer@example.test"
    assert claims["user_metadata"] == {"plan": "free"}
    me = client.get("/user", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["username"] is None and me.json()["email"] == "newcomer@example.test"
    assert user_row(dsn, "newcomer@example.test")["email_confirmed_at"] is not None
    # No password ever matches it.
    for password in ("None", "null", PASSWORD):
        assert_error(login(client, "newcomer@example.test", password), 401, "invalid_credentials")


def test_sign_up_data_is_bounded(client):
    r = otp(client, "big@example.test", data={"note": "x" * 17000})
    assert_error(r, 400, "metadata_too_large")


def test_wrong_codes_run_out_and_then_even_the_right_code_waits_for_the_window(
    start_service, smtp, dsn
):
    service = start_service()  # rate_limit.verify: 20 per hour, the default
    with service.client() as client:
        assert sign_up(client, "carol", "carol@corp.local").status_code == 201
        assert otp(client, "carol@corp.local").status_code == 200
        mail = secret_to(smtp, "carol@corp.local", SIGN_IN)
        wrong = wrong_code(mail.code)

        def verify(email: str, code: str) -> httpx.Response:
            return client.post("/verify", json={"type": "email", "email": email, "token": code})

        # A wrong code for an account and for no account: the same answer, nothing changes.
        known, unknown = verify("carol@corp.local", wrong), verify("ghost@corp.local", wrong)
        assert_error(known, 401, "otp_expired")
        assert known.content == unknown.content
        for _ in range(19):
            assert_error(verify("carol@corp.local", wrong), 401, "otp_expired")
        r = verify("carol@corp.local", wrong)
        assert_error(r, 429, "rate_limited")
        assert int(r.headers["Retry-After"]) > 0
        r = verify("carol@corp.local", mail.code)
        assert_error(r, 429, "rate_limited")  # the right code too, until the window ends
        assert run_sql(dsn, "select count(*) from auth.sessions")[0][0] == 1  # sign-up's only

        # The window ends (moved back in time rather than waited for): the code still works.
        run_sql(
            dsn,
            "update auth.rate_limits set window_started_at = now() - interval '2 hours'"
            " where key like 'verify:%'",
        )
        assert_session(verify("carol@corp.local", mail.code))

    failed = [d for e, _, d in audit_events(dsn) if e == "otp_failed"]
    assert len(failed) == 21 and failed[0] == {"type": "email", "via": "code"}


def test_the_link_still_works_while_guessed_codes_are_locked_out(start_service, smtp, dsn):
    service = start_service(rate_limit={"verify": {"requests": 3, "window": 3600}})
    with service.client() as client:
        assert otp(client, "dave@example.test").status_code == 200
        mail = secret_to(smtp, "dave@example.test", SIGN_IN)
        body = {"type": "email", "email": "dave@example.test", "token": wrong_code(mail.code)}
        codes = [client.post("/verify", json=body).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        assert_session(httpx.get(service.url + mail.path()))


def test_mail_budgets_are_per_kind(start_service, smtp):
    service = start_service(rate_limit={"email_sent": {"requests": 2, "window": 3600}})
    with service.client() as client:
        assert sign_up(client, "erin", "erin@example.test").status_code == 201  # welcome: free
        assert [otp(client, "erin@example.test").status_code for _ in range(2)] == [200, 200]
        assert_error(otp(client, "erin@example.test"), 429, "email_rate_limited")
        r = client.post("/recover", json={"email": "erin@example.test"})
        assert r.status_code == 200, r.text


def test_recovery_by_mail_signs_in_and_answers_alike(client, service, smtp, dsn):
    assert sign_up(client, "frank", "frank@corp.local").status_code == 201

    def send() -> list[httpx.Response]:
        return [
            client.post("/recover", json={"email": "frank@corp.local"}),
            client.post("/recover", json={"email": "nobody@corp.local"}),
        ]

    known, unknown = settle_detached_lookups(dsn, send, lookups=2)
    assert known.status_code == 200 and known.content == unknown.content, known.text
    assert [k for k, _ in outbox(dsn) if k == "recovery"] == ["recovery"]
    mail = secret_to(smtp, "frank@corp.local", "Recover")
    assert mail.type == "recovery"
    body = assert_session(
        client.post(
            "/verify", json={"type": "recovery", "email": "frank@corp.local", "token": mail.code}
        )
    )
    assert claims_of(body)["email"] == "frank@corp.local"
    # Signed in, the owner sets a new password (the one set without proof of the address
    # went when the mailbox was proven).
    me = {"Authorization": f"Bearer {body['access_token']}"}
    r = client.put("/user", json={"password": "a brand new password"}, headers=me)
    assert r.status_code == 200, r.text
    other = login(client, "frank", "a brand new password").json()
    # Another change ends every other session; this one goes on.
    r = client.put("/user", json={"password": "another new password"}, headers=me)
    assert r.status_code == 200, r.text
    assert client.get("/user", headers=me).status_code == 200
    gone = client.get("/user", headers={"Authorization": f"Bearer {other['access_token']}"})
    assert_error(gone, 401, "token_revoked")
    assert login(client, "frank", "another new password").status_code == 200


def test_get_verify_redirects_with_the_session_or_the_error_in_the_fragment(
    start_service, smtp, dsn
):
    redirect = "https://app.corp.local/welcome#old"
    service = start_service(email={"redirect_url": redirect})
    with service.client(follow_redirects=False) as client:
        assert otp(client, "grace@corp.local").status_code == 200
        mail = secret_to(smtp, "grace@corp.local", SIGN_IN)
        # GoTrue's links say token= instead of token_hash=.
        r = client.get("/verify", params={"token": mail.token_hash, "type": "magiclink"})
        assert r.status_code == 303, r.text
        location = urlsplit(r.headers["location"])
        assert location._replace(fragment="").geturl() == "https://app.corp.local/welcome"
        fragment = {k: v[0] for k, v in parse_qs(location.fragment).items()}
        assert set(fragment) == {
            "access_token",
            "refresh_token",
            "expires_in",
            "expires_at",
            "token_type",
            "type",
        }
        assert fragment["token_type"] == "bearer" and fragment["type"] == "magiclink"
        assert claims_of(fragment)["email"] == "grace@corp.local"
        # The session works: its refresh token is live.
        r = client.post("/refresh_token", json={"refresh_token": fragment["refresh_token"]})
        assert r.status_code == 200, r.text

        r = client.get("/verify", params={"token_hash": mail.token_hash, "type": "magiclink"})
        assert r.status_code == 303
        error = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).fragment).items()}
        assert error == {
            "error": "access_denied",
            "error_code": "otp_expired",
            "error_description": "Token has expired or is invalid",
        }
        r = client.get("/verify", params={"token_hash": mail.token_hash, "type": "bogus"})
        assert r.status_code == 303 and "error=invalid_request" in r.headers["location"]


def test_in_cookie_mode_the_redirect_sets_the_cookie_and_keeps_the_token_out_of_the_url(
    start_service, smtp
):
    service = start_service(
        cookie={"enabled": True}, email={"redirect_url": "https://app.corp.local/"}
    )
    with service.client(follow_redirects=False) as client:
        assert otp(client, "judy@corp.local").status_code == 200
        mail = secret_to(smtp, "judy@corp.local", SIGN_IN)
        r = httpx.get(service.url + mail.path(), follow_redirects=False)
        assert r.status_code == 303, r.text
        fragment = parse_qs(urlsplit(r.headers["location"]).fragment)
        assert "access_token" in fragment and "refresh_token" not in fragment
        cookie = r.cookies.get("session_token")
        assert cookie and "httponly" in r.headers["set-cookie"].lower()
        assert cookie not in r.headers["location"]
        client.cookies.set("session_token", cookie)
        me = client.get("/user")
        assert me.status_code == 200 and me.json()["email"] == "judy@corp.local", me.text


def test_compat_mode_refuses_accounts_without_a_username(start_service, smtp, dsn):
    service = start_service(roles={"per_user": True})
    with service.client() as client:
        r = otp(client, "heidi@example.test")
        body = assert_error(r, 400, "validation_failed")
        assert "roles.per_user" in body["message"]
        assert user_row(dsn, "heidi@example.test") is None
        # Signing existing accounts in makes none: allowed.
        r = otp(client, "heidi@example.test", create_user=False)
        assert r.status_code == 200, r.text


def test_the_audit_trail_records_each_step_and_no_secret(start_service, smtp, dsn):
    service = start_service(email={"confirm": True})
    secrets: list[str] = []
    with service.client() as client:
        assert sign_up(client, "ivan", "ivan@corp.local").status_code == 201
        signup = secret_to(smtp, "ivan@corp.local", "Confirm your")
        secrets += [signup.code, signup.token_hash]
        r = client.post(
            "/verify",
            json={"type": "signup", "email": "ivan@corp.local", "token": wrong_code(signup.code)},
        )
        assert_error(r, 401, "otp_expired")
        assert_session(
            client.post(
                "/verify", json={"type": "signup", "email": "ivan@corp.local", "token": signup.code}
            )
        )

        assert otp(client, "ivan@corp.local").status_code == 200
        magic = secret_to(smtp, "ivan@corp.local", SIGN_IN)
        secrets += [magic.code, magic.token_hash]
        assert_session(httpx.get(service.url + magic.path()))

        r = client.post(
            "/change_email",
            json={"username": "ivan", "password": PASSWORD, "email": "ivan@new.corp.local"},
        )
        assert r.status_code == 200, r.text
        change = secret_to(smtp, "ivan@new.corp.local", "Confirm your new")
        secrets += [change.code, change.token_hash]
        assert_session(
            client.post("/verify", json={"type": "email_change", "token_hash": change.token_hash})
        )

    events = audit_events(dsn)
    names = [e for e, _, _ in events]
    for expected in (
        "signed_up",
        "otp_requested",
        "otp_failed",
        "email_confirmed",
        "signed_in",
        "email_change_requested",
        "email_changed",
    ):
        assert expected in names, (expected, names)
    user_id = user_row(dsn, "ivan@new.corp.local")["id"]
    assert {u for _, u, _ in events} == {user_id}
    sign_ins = [(d["method"], d["kind"]) for e, _, d in events if e == "signed_in"]
    assert sign_ins == [
        ("otp", "signup"),
        ("magiclink", "magiclink"),
        ("magiclink", "email_change"),
    ]
    text = audit_text(dsn)
    for secret in secrets:
        assert secret not in text
    stored = run_sql(
        dsn, "select t.*, u.uid from auth.one_time_tokens t join auth.users u on u.id = t.user_id"
    )
    assert len(stored) == 3
    for row in stored:  # only hashes; the code's keyed: no plain hash of it to search for
        kept = (row["token_hash"], row["code_hash"])
        for secret in secrets:
            assert secret.encode() not in kept
            for plain in (secret, f"{row['kind']}:{row['uid']}:{secret}"):
                assert hashlib.sha256(plain.encode()).digest() not in kept[1:]
    assert {hashlib.sha256(s.encode()).digest() for s in secrets} >= {
        r["token_hash"] for r in stored
    }
