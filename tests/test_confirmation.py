"""Address confirmation (`email.confirm`) and the secure address change, against the real
service, PostgreSQL and SMTP: links and codes are read from the mail as it arrived."""

from __future__ import annotations

import httpx
import pytest

from .email_flows import (
    PASSWORD,
    assert_error,
    assert_session,
    audit_events,
    claims_of,
    login,
    mail_to,
    outbox,
    secret_to,
    services_on,
    sign_up,
    user_row,
)
from .support import run_sql, settle_detached_lookups, wait_until

CONFIRM = {"email": {"confirm": True}}


@pytest.fixture
def start_service(dsn, smtp):  # type: ignore[no-untyped-def]
    yield from services_on(dsn, smtp)


CONFIRM_SUBJECT = "Confirm your"


def test_sign_up_waits_for_the_mailed_link_before_password_sign_in(start_service, smtp, dsn):
    service = start_service(**CONFIRM, public_url="https://auth.corp.local/")
    with service.client() as client:
        r = sign_up(client, "alice", "Alice@Corp.Local")
        assert r.status_code == 201, r.text
        assert set(r.json()) == {"message"}  # no tokens, no session
        assert run_sql(dsn, "select count(*) from auth.sessions")[0][0] == 0
        # Refused only once the password is right: a wrong one says nothing of the account.
        assert_error(login(client, "alice", "wrong password"), 401, "invalid_credentials")
        assert_error(login(client, "alice"), 403, "email_not_confirmed")
        assert_error(login(client, "alice@corp.local"), 403, "email_not_confirmed")
        r = client.post("/refresh_token", json={"username": "alice", "password": PASSWORD})
        assert_error(r, 403, "email_not_confirmed")

        mail = secret_to(smtp, "alice@corp.local", CONFIRM_SUBJECT)
        assert mail.link.startswith("https://auth.corp.local/auth/verify?token_hash=")
        assert mail.type == "signup"
        assert [kind for kind, _ in outbox(dsn)] == ["confirm_signup"]  # no welcome as well

        confirmed = assert_session(httpx.get(service.url + mail.path()))
        assert claims_of(confirmed)["email"] == "alice@corp.local"
        assert user_row(dsn, "alice@corp.local")["email_confirmed_at"] is not None
        assert_session(login(client, "alice"))
        # Single-use: the same link again is refused, and changes nothing.
        r = httpx.get(service.url + mail.path())
        assert_error(r, 401, "otp_expired")
        assert_session(login(client, "alice@corp.local"))

    events = [(event, detail) for event, _, detail in audit_events(dsn)]
    assert ("email_confirmed", {}) in events
    assert ("signed_in", {"method": "magiclink", "kind": "signup"}) in events


def test_the_mailed_code_confirms_too_and_works_once(start_service, smtp, dsn):
    service = start_service(**CONFIRM)
    with service.client() as client:
        assert sign_up(client, "bob", "bob@example.test").status_code == 201
        mail = secret_to(smtp, "bob@example.test", CONFIRM_SUBJECT)
        body = {"type": "signup", "email": "BOB@example.test", "token": mail.code}
        assert_session(client.post("/verify", json=body))
        assert_session(login(client, "bob"))
        assert_error(client.post("/verify", json=body), 401, "otp_expired")  # spent
        # The code's link died with it: one secret, two ways to present it.
        assert_error(
            client.get(f"/verify?token_hash={mail.token_hash}&type=signup"), 401, "otp_expired"
        )


def test_expired_link_and_code_are_refused(start_service, smtp, dsn):
    service = start_service(email={"confirm": True, "otp_exp": 1})
    with service.client() as client:
        assert sign_up(client, "carol", "carol@example.com").status_code == 201
        mail = secret_to(smtp, "carol@example.com", CONFIRM_SUBJECT)
        wait_until(
            lambda: run_sql(dsn, "select bool_and(expires_at < now()) from auth.one_time_tokens")[
                0
            ][0]
        )
        r = client.post(
            "/verify", json={"type": "signup", "email": "carol@example.com", "token": mail.code}
        )
        assert_error(r, 401, "otp_expired")
        assert_error(
            client.post("/verify", json={"type": "signup", "token_hash": mail.token_hash}),
            401,
            "otp_expired",
        )
        assert_error(login(client, "carol"), 403, "email_not_confirmed")
        assert user_row(dsn, "carol@example.com")["email_confirmed_at"] is None


def test_resend_supersedes_the_old_link_answers_alike_and_is_limited_per_kind(
    start_service, smtp, dsn
):
    service = start_service(**CONFIRM, rate_limit={"email_sent": {"requests": 2, "window": 600}})
    with service.client() as client:
        assert sign_up(client, "dave", "dave@example.com").status_code == 201  # not counted
        first = secret_to(smtp, "dave@example.com", CONFIRM_SUBJECT)

        def send() -> list[httpx.Response]:
            return [
                client.post("/resend", json={"type": "signup", "email": "dave@example.com"}),
                client.post("/resend", json={"type": "signup", "email": "nobody@example.com"}),
            ]

        known, unknown = settle_detached_lookups(dsn, send, lookups=2)
        assert known.status_code == unknown.status_code == 200, (known.text, unknown.text)
        assert known.content == unknown.content
        second = secret_to(smtp, "dave@example.com", CONFIRM_SUBJECT, count=2)
        assert second.code != first.code or second.token_hash != first.token_hash
        assert ("confirm_signup", "nobody@example.com") not in outbox(dsn)

        # The newer mail supersedes the older: its link and code are dead.
        assert_error(httpx.get(service.url + first.path()), 401, "otp_expired")
        r = client.post(
            "/verify", json={"type": "signup", "email": "dave@example.com", "token": first.code}
        )
        if first.code != second.code:
            assert_error(r, 401, "otp_expired")

        # Resend 2 of 2, then 429, for a known and an unknown address alike.
        def resend(address: str) -> httpx.Response:
            return client.post("/resend", json={"type": "signup", "email": address})

        for address in ("dave@example.com", "nobody@example.com"):
            assert resend(address).status_code == 200
            r = resend(address)
            assert_error(r, 429, "email_rate_limited")
            assert 0 < int(r.headers["Retry-After"]) <= 600
        # Resends spent on an address never bar its owner from signing up.
        assert sign_up(client, "nobody", "nobody@example.com").status_code == 201
        secret_to(smtp, "nobody@example.com", CONFIRM_SUBJECT)
        # Another kind of mail keeps its own budget.
        r = client.post("/otp", json={"email": "dave@example.com", "create_user": False})
        assert r.status_code == 200, r.text

        third = secret_to(smtp, "dave@example.com", CONFIRM_SUBJECT, count=3)
        assert_session(httpx.get(service.url + third.path()))
        assert_session(login(client, "dave"))


def test_confirmation_off_signs_up_at_once_and_leaves_the_address_unproven(client, smtp, dsn):
    r = sign_up(client, "erin", "erin@example.com")
    assert r.status_code == 201 and "access_token" in r.json(), r.text
    assert user_row(dsn, "erin@example.com")["email_confirmed_at"] is None
    assert_session(login(client, "erin"))
    smtp.mailbox.wait_for("erin@example.com")
    assert outbox(dsn) == [("welcome", "erin@example.com")]


def test_without_an_address_there_is_nothing_to_confirm(start_service):
    service = start_service(**CONFIRM)
    with service.client() as client:
        r = sign_up(client, "frank", None)
        assert r.status_code == 201 and "access_token" in r.json(), r.text
        assert_session(login(client, "frank"))


def _confirmed_account(client: httpx.Client, smtp, username: str, email: str) -> None:
    assert sign_up(client, username, email).status_code == 201
    mail = secret_to(smtp, email, CONFIRM_SUBJECT)
    assert_session(client.post("/verify", json={"type": "signup", "token_hash": mail.token_hash}))


def _change_email(client: httpx.Client, username: str, email: str) -> httpx.Response:
    return client.post(
        "/change_email", json={"username": username, "password": PASSWORD, "email": email}
    )


def test_secure_email_change_happens_only_when_the_new_address_verifies(start_service, smtp, dsn):
    service = start_service(**CONFIRM)
    with service.client() as client:
        _confirmed_account(client, smtp, "grace", "grace@old.test")
        r = _change_email(client, "grace", "Grace@New.Test")
        assert r.status_code == 200, r.text
        assert r.json() == {"message": "Confirmation email sent to the new address"}

        notice = mail_to(smtp, "grace@old.test", "change of your")
        assert "grace@new.test" in notice.get_body(("plain",)).get_content()
        mail = secret_to(smtp, "grace@new.test", "Confirm your new")
        assert mail.type == "email_change"
        row = user_row(dsn, "grace@old.test")
        assert (row["email"], row["new_email"]) == ("grace@old.test", "grace@new.test")
        assert_session(login(client, "grace@old.test"))  # nothing moved yet
        assert_error(login(client, "grace@new.test"), 401, "invalid_credentials")

        # A wrong code changes nothing.
        wrong = "000000" if mail.code != "000000" else "111111"
        r = client.post(
            "/verify", json={"type": "email_change", "email": "grace@new.test", "token": wrong}
        )
        assert_error(r, 401, "otp_expired")
        assert user_row(dsn, "grace@old.test")["email"] == "grace@old.test"

        r = client.post(
            "/verify", json={"type": "email_change", "email": "grace@new.test", "token": mail.code}
        )
        body = assert_session(r)
        assert claims_of(body)["email"] == "grace@new.test"
        row = user_row(dsn, "grace@new.test")
        assert (row["email"], row["new_email"]) == ("grace@new.test", None)
        assert row["email_confirmed_at"] is not None
        assert_session(login(client, "grace@new.test"))
        assert_error(login(client, "grace@old.test"), 401, "invalid_credentials")
        changed = mail_to(smtp, "grace@old.test", "was changed")
        assert "grace@new.test" in changed.get_body(("plain",)).get_content()

    events = [event for event, _, _ in audit_events(dsn)]
    assert events.count("email_change_requested") == 1
    assert events.count("email_changed") == 1
    assert events.index("email_change_requested") < events.index("email_changed")


def test_an_address_taken_before_the_change_verifies_is_a_409(start_service, smtp, dsn):
    service = start_service(**CONFIRM)
    with service.client() as client:
        _confirmed_account(client, smtp, "heidi", "heidi@example.com")
        assert _change_email(client, "heidi", "shared@example.com").status_code == 200
        mail = secret_to(smtp, "shared@example.com", "Confirm your new")
        # Someone else signs up with that address meanwhile.
        assert sign_up(client, "ivan", "shared@example.com").status_code == 201
        r = client.post("/verify", json={"type": "email_change", "token_hash": mail.token_hash})
        assert_error(r, 409, "email_taken")
        row = user_row(dsn, "heidi@example.com")
        assert (row["email"], row["new_email"]) == ("heidi@example.com", "shared@example.com")
        # Asking for a taken address is refused at once.
        assert_error(_change_email(client, "heidi", "shared@example.com"), 409, "email_taken")


def test_email_change_without_confirmation_is_immediate_as_before(client, smtp, dsn):
    assert sign_up(client, "judy", "judy@old.test").status_code == 201
    r = _change_email(client, "judy", "judy@new.test")
    assert r.status_code == 200 and r.json() == {"message": "Email changed"}, r.text
    row = user_row(dsn, "judy@new.test")
    assert (row["email"], row["new_email"]) == ("judy@new.test", None)
    smtp.mailbox.wait_for("judy@old.test", count=2)  # welcome, then the change notice
    assert [k for k, _ in outbox(dsn)] == ["welcome", "email_changed"]
