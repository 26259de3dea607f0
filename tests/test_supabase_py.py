"""The real Python client, `supabase_auth` (what `supabase-py` uses), against the GoTrue-compatible
API at `/auth/v1`: every flow a Python application uses, each with the SYNC client
(SyncGoTrueClient) and the ASYNC one (AsyncGoTrueClient). The client parses every answer with
its pydantic models, so each call also proves the answer's shape."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from supabase_auth.errors import AuthApiError, AuthError, AuthInvalidJwtError, AuthWeakPasswordError

from .supabase_py_support import (
    KINDS,
    Clients,
    clients,
    rsa_key_file,
    secret_mail,
    service_role_token,
)
from .support import Service, SmtpServer, make_settings, wait_until

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a new long passphrase"
EMAIL = "alice@example.com"
SITE = "http://app.test:5173"


def start(dsn: str, smtp: SmtpServer, **overrides: Any) -> Service:
    gotrue = {"site_url": SITE, "redirect_urls": ["https://other.test/callback/*"]}
    return Service(make_settings(dsn, smtp.port, gotrue=gotrue, **overrides)).start()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def service(dsn: str, smtp: SmtpServer) -> Iterator[Service]:
    """A spent refresh token presented again ends its session at once (no two-tab grace)."""
    running = start(dsn, smtp, sessions={"reuse_interval": 0})
    yield running
    running.stop()


@pytest.fixture
def new_client(kind: str, service: Service) -> Iterator[Clients]:
    yield from clients(kind, service.base + "/v1")


def refused(call: Callable[..., Any], *args: Any, status: int, code: str) -> AuthError:
    """The error the client raises for a refusal: GoTrue's status and error code."""
    with pytest.raises(AuthError) as caught:
        call(*args)
    error = caught.value
    seen = (getattr(error, "status", None), error.code)
    assert seen == (status, code), f"{type(error).__name__} {seen}: {error.message}"
    return error


def credentials(email: str = EMAIL, password: str = PASSWORD) -> dict[str, Any]:
    return {"email": email, "password": password}


def code_in_redirect(link: str, target: str) -> str:
    """Open a mailed link as a browser would (no redirect followed): the PKCE `?code=` that the
    service sends the browser to `target` with."""
    opened = httpx.get(link, follow_redirects=False)
    assert opened.status_code == 303, opened.text
    location = opened.headers["location"]
    assert location.startswith(target + "?") and "access_token" not in location, location
    [code] = parse_qs(urlsplit(location).query)["code"]
    return code


# -- sessions -----------------------------------------------------------------------------------


def test_sign_up_sign_in_get_user_and_claims(new_client: Clients) -> None:
    auth = new_client()
    events: list[str] = []
    auth.on_auth_state_change(lambda event, _session: events.append(event))
    signed_up = auth.sign_up({**credentials(), "options": {"data": {"name": "Alice"}}})
    session, user = signed_up.session, signed_up.user
    assert session is not None and user is not None, signed_up
    assert session.token_type == "bearer" and session.expires_in > 90 and session.expires_at
    assert str(uuid.UUID(user.id)) == user.id and user.email == EMAIL
    assert user.aud == "authenticated" and user.role and user.is_anonymous is False
    assert user.user_metadata == {"name": "Alice"}
    assert user.app_metadata == {"provider": "email", "providers": ["email"]}
    [identity] = user.identities or []
    assert (identity.provider, identity.user_id) == ("email", user.id)
    assert events == ["SIGNED_IN"]

    kept = auth.get_session()
    assert kept is not None and kept.access_token == session.access_token
    assert auth.get_user().user.id == user.id  # by the kept session

    other = new_client()
    assert other.get_user() is None  # no session yet
    signed_in = other.sign_in_with_password(credentials())
    assert signed_in.session is not None and signed_in.user.id == user.id
    assert signed_in.session.refresh_token != session.refresh_token
    assert other.get_user(session.access_token).user.email == EMAIL  # by a given token

    claims = other.get_claims()  # HS256: the client checks the token with GET /user
    assert claims is not None and claims["headers"]["alg"] == "HS256"
    payload = claims["claims"]
    assert payload["sub"] == user.id and payload["role"] == user.role
    assert payload["session_id"] and payload["aal"] == "aal1"
    assert payload["amr"][0]["method"] == "password"


def test_update_user_data_password_and_email(new_client: Clients, smtp: SmtpServer) -> None:
    auth = new_client()
    auth.sign_up({**credentials(), "options": {"data": {"name": "Alice"}}})
    elsewhere = new_client()
    elsewhere.sign_in_with_password(credentials())
    events: list[str] = []
    auth.on_auth_state_change(lambda event, _session: events.append(event))

    assert auth.update_user({"data": {"theme": "dark"}}).user.user_metadata == {
        "name": "Alice",
        "theme": "dark",
    }
    assert auth.update_user({"data": {"name": None}}).user.user_metadata == {"theme": "dark"}
    assert auth.get_session().user.user_metadata == {"theme": "dark"}  # the client kept it

    auth.update_user({"password": NEW_PASSWORD})
    assert auth.get_user().user.email == EMAIL  # this session goes on
    refused(elsewhere.get_user, status=403, code="session_not_found")  # the others end
    refused(
        new_client().sign_in_with_password, credentials(), status=400, code="invalid_credentials"
    )
    assert new_client().sign_in_with_password(credentials(password=NEW_PASSWORD)).session

    moved = auth.update_user({"email": "alice.new@example.com"})  # email.confirm is off
    assert moved.user.email == "alice.new@example.com" and moved.user.new_email is None
    again = new_client().sign_in_with_password(credentials("alice.new@example.com", NEW_PASSWORD))
    assert again.user.id == moved.user.id
    assert events == ["USER_UPDATED"] * 4
    subjects = lambda: [str(m["Subject"]) for m in smtp.mailbox.to(EMAIL)]  # noqa: E731
    wait_until(lambda: any("address was changed" in s for s in subjects()))  # the old address


def test_refresh_session_rotates_and_a_reused_token_ends_the_session(new_client: Clients) -> None:
    auth = new_client()
    events: list[str] = []
    first = auth.sign_up(credentials()).session
    auth.on_auth_state_change(lambda event, _session: events.append(event))

    second = auth.refresh_session().session  # the kept session's refresh token
    assert second is not None and second.refresh_token != first.refresh_token
    assert auth.get_session().refresh_token == second.refresh_token
    third = auth.refresh_session(second.refresh_token).session  # a given one
    assert third is not None and third.refresh_token not in (
        first.refresh_token,
        second.refresh_token,
    )
    assert third.user.id == first.user.id and auth.get_user().user.id == first.user.id
    assert events == ["TOKEN_REFRESHED", "TOKEN_REFRESHED"]

    moved = new_client()  # a session handed to another process
    assert moved.set_session(third.access_token, third.refresh_token).session is not None
    assert moved.get_user().user.id == first.user.id

    stale = new_client()
    refused(
        stale.refresh_session, first.refresh_token, status=400, code="refresh_token_already_used"
    )
    refused(auth.get_user, status=403, code="session_not_found")  # the whole session ended
    refused(stale.refresh_session, "never-issued", status=400, code="refresh_token_not_found")


def test_sign_out_scopes(new_client: Clients) -> None:
    a = new_client()
    a.sign_up(credentials())
    b = new_client()
    b.sign_in_with_password(credentials())

    a.sign_out({"scope": "others"})
    assert a.get_session() is not None and a.get_user().user.email == EMAIL
    refused(b.get_user, status=403, code="session_not_found")
    b.sign_out()  # already ended on the server: the client counts it signed out
    assert b.get_session() is None

    c = new_client()
    c.sign_in_with_password(credentials())
    token = a.get_session().access_token
    a.sign_out({"scope": "local"})
    assert a.get_session() is None
    refused(new_client().get_user, token, status=403, code="session_not_found")
    assert c.get_user().user.email == EMAIL  # local ends only that session

    d = new_client()
    d.sign_in_with_password(credentials())
    d.sign_out()  # global by default
    assert d.get_session() is None
    refused(c.get_user, status=403, code="session_not_found")


# -- mailed codes and links ---------------------------------------------------------------------


def test_recovery_by_the_mailed_code(new_client: Clients, smtp: SmtpServer) -> None:
    new_client().sign_up(credentials())
    auth = new_client()
    events: list[str] = []
    auth.on_auth_state_change(lambda event, _session: events.append(event))
    auth.reset_password_for_email(EMAIL, {"redirect_to": SITE + "/reset"})
    auth.reset_password_for_email("nobody@example.com")  # the same answer for an unknown address

    mail = secret_mail(smtp, EMAIL, "recovery")
    assert parse_qs(urlsplit(mail.link).query)["redirect_to"] == [SITE + "/reset"]
    recovered = auth.verify_otp({"type": "recovery", "email": EMAIL, "token": mail.code})
    assert recovered.session is not None and recovered.user.email == EMAIL
    assert events == ["PASSWORD_RECOVERY"]
    auth.update_user({"password": NEW_PASSWORD})

    assert new_client().sign_in_with_password(credentials(password=NEW_PASSWORD)).session
    refused(
        new_client().sign_in_with_password, credentials(), status=400, code="invalid_credentials"
    )
    spent = {"type": "recovery", "email": EMAIL, "token": mail.code}
    refused(new_client().verify_otp, spent, status=403, code="otp_expired")  # single use


def test_sign_in_with_otp_by_code_and_by_link(new_client: Clients, smtp: SmtpServer) -> None:
    auth = new_client()
    sent = auth.sign_in_with_otp({"email": EMAIL, "options": {"data": {"name": "Otto"}}})
    assert sent.user is None and sent.session is None  # GoTrue's `{}`
    mail = secret_mail(smtp, EMAIL, "magiclink")  # a new address: the account is made
    signed_in = auth.verify_otp({"type": "email", "email": EMAIL, "token": mail.code})
    assert signed_in.session is not None and signed_in.user.email == EMAIL
    assert signed_in.user.user_metadata == {"name": "Otto"}
    assert auth.get_user().user.email_confirmed_at is not None  # the code proved the address

    # the link, opened in a browser, lands on the app with the session in the fragment
    auth.sign_in_with_otp({"email": EMAIL, "options": {"email_redirect_to": SITE + "/welcome"}})
    link = secret_mail(smtp, EMAIL, "magiclink", 2).link
    opened = httpx.get(link, follow_redirects=False)
    assert opened.status_code == 303, opened.text
    landing = opened.headers["location"]
    assert landing.startswith(SITE + "/welcome#access_token="), landing
    app = new_client()
    app.initialize(url=landing)
    restored = app.get_session()
    assert restored is not None and restored.user.id == signed_in.user.id
    assert app.refresh_session().session is not None  # the fragment's refresh token works


def test_pkce_links_give_codes_the_same_storage_exchanges(
    new_client: Clients, smtp: SmtpServer
) -> None:
    new_client().sign_up(credentials())
    auth = new_client(flow_type="pkce")
    events: list[str] = []
    auth.on_auth_state_change(lambda event, _session: events.append(event))

    auth.sign_in_with_otp({"email": EMAIL, "options": {"email_redirect_to": SITE + "/callback"}})
    code = code_in_redirect(secret_mail(smtp, EMAIL, "magiclink").link, SITE + "/callback")
    signed_in = auth.exchange_code_for_session({"auth_code": code})  # the stored verifier
    assert signed_in.session is not None and signed_in.user.email == EMAIL
    assert events == ["SIGNED_IN"]

    auth.reset_password_for_email(EMAIL, {"redirect_to": "https://other.test/callback/reset"})
    link = secret_mail(smtp, EMAIL, "recovery").link
    code = code_in_redirect(link, "https://other.test/callback/reset")
    assert auth.exchange_code_for_session({"auth_code": code}).session is not None
    assert events[-1] == "PASSWORD_RECOVERY"
    auth.update_user({"password": NEW_PASSWORD})
    assert new_client().sign_in_with_password(credentials(password=NEW_PASSWORD)).session

    # a code stolen on its way is worth nothing without the verifier kept by the client
    auth.sign_in_with_otp({"email": EMAIL})
    stolen = code_in_redirect(secret_mail(smtp, EMAIL, "magiclink", 2).link, SITE)
    thief = new_client(flow_type="pkce")
    wrong = {"auth_code": stolen, "code_verifier": "x" * 64}
    refused(thief.exchange_code_for_session, wrong, status=400, code="bad_code_verifier")


def test_the_errors_the_client_raises(new_client: Clients) -> None:
    auth = new_client()
    auth.sign_up(credentials())
    signin = auth.sign_in_with_password
    wrong = refused(
        signin, credentials(password="not it at all"), status=400, code="invalid_credentials"
    )
    assert isinstance(wrong, AuthApiError)
    refused(signin, credentials("nobody@example.com"), status=400, code="invalid_credentials")
    refused(auth.sign_up, credentials(), status=422, code="user_already_exists")

    weak = refused(
        auth.sign_up, credentials("bob@example.com", "short"), status=422, code="weak_password"
    )
    assert isinstance(weak, AuthWeakPasswordError) and weak.reasons, weak.to_dict()
    weak = refused(auth.update_user, {"password": "short"}, status=422, code="weak_password")
    assert isinstance(weak, AuthWeakPasswordError) and weak.reasons, weak.to_dict()
    refused(auth.update_user, {"password": PASSWORD}, status=422, code="same_password")

    refused(auth.get_user, "not.a.token", status=403, code="bad_jwt")
    wrong_code = {"type": "email", "email": EMAIL, "token": "000000"}
    refused(auth.verify_otp, wrong_code, status=403, code="otp_expired")
    refused(auth.sign_in_anonymously, status=422, code="anonymous_provider_disabled")
    phone = {"phone": "+15555550100", "password": PASSWORD}
    refused(auth.sign_up, phone, status=422, code="phone_provider_disabled")


# -- email confirmation, an asymmetric signing key ----------------------------------------------


def test_confirmation_resend_email_change_and_rs256_claims(
    kind: str, dsn: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    key = {"kid": "py-rs256", "algorithm": "RS256", "private_key_file": str(rsa_key_file(tmp_path))}
    service = start(dsn, smtp, email={"confirm": True}, jwt={"keys": [key]})
    try:
        for new_client in clients(kind, service.base + "/v1"):
            _confirmation_flow(new_client, smtp)
    finally:
        service.stop()


def _confirmation_flow(new_client: Clients, smtp: SmtpServer) -> None:
    auth = new_client()
    signed_up = auth.sign_up(credentials())  # the bare user: no session until confirmed
    assert signed_up.session is None and signed_up.user is not None
    assert signed_up.user.email == EMAIL and signed_up.user.email_confirmed_at is None
    assert auth.get_session() is None
    refused(auth.sign_in_with_password, credentials(), status=400, code="email_not_confirmed")

    assert auth.resend({"type": "signup", "email": EMAIL}).user is None
    latest = secret_mail(smtp, EMAIL, "signup", 2)
    confirmed = auth.verify_otp({"type": "signup", "email": EMAIL, "token": latest.code})
    assert confirmed.session is not None and confirmed.user.email_confirmed_at is not None

    claims = auth.get_claims()  # RS256: checked against the service's JWKS
    assert claims is not None
    assert (claims["headers"]["alg"], claims["headers"]["kid"]) == ("RS256", "py-rs256")
    assert claims["claims"]["sub"] == confirmed.user.id
    forged = jwt.encode(
        dict(claims["claims"]),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        algorithm="RS256",
        headers={"kid": "py-rs256"},
    )
    with pytest.raises(AuthInvalidJwtError):
        auth.get_claims(forged)

    waiting = auth.update_user({"email": "alice.new@example.com"})
    assert (waiting.user.email, waiting.user.new_email) == (EMAIL, "alice.new@example.com")
    mail = secret_mail(smtp, "alice.new@example.com", "email_change")
    change = {"type": "email_change", "email": "alice.new@example.com", "token": mail.code}
    auth.verify_otp(change)
    assert auth.get_user().user.email == "alice.new@example.com"


# -- the admin client (a service-role key) ------------------------------------------------------


def test_admin_client_manages_users(
    new_client: Clients, service: Service, smtp: SmtpServer
) -> None:
    key = service_role_token(service.settings)
    admin = new_client(headers={"apikey": key, "Authorization": f"Bearer {key}"}).admin

    created = admin.create_user(
        {
            **credentials("ann@example.com"),
            "email_confirm": True,
            "user_metadata": {"name": "Ann"},
            "app_metadata": {"plan": "free"},
        }
    ).user
    assert created.email == "ann@example.com" and created.email_confirmed_at is not None
    assert created.user_metadata == {"name": "Ann"} and created.app_metadata["plan"] == "free"
    new_client().sign_up(credentials())
    assert {u.email for u in admin.list_users()} == {"ann@example.com", EMAIL}
    assert len(admin.list_users(page=1, per_page=1)) == 1
    assert admin.get_user_by_id(created.id).user.email == "ann@example.com"

    ann = credentials("ann@example.com")
    signed_in = new_client()
    signed_in.sign_in_with_password(ann)
    banned = admin.update_user_by_id(
        created.id, {"ban_duration": "24h", "app_metadata": {"plan": "pro"}}
    ).user
    assert banned.banned_until is not None and banned.app_metadata["plan"] == "pro"
    refused(new_client().sign_in_with_password, ann, status=400, code="user_banned")
    assert admin.update_user_by_id(created.id, {"ban_duration": "none"}).user.banned_until is None
    fresh = new_client()
    fresh.sign_in_with_password(ann)
    assert fresh.get_claims()["claims"]["app_metadata"]["plan"] == "pro"

    link = admin.generate_link({"type": "magiclink", "email": "ann@example.com"})
    assert link.user.id == created.id and link.properties.verification_type == "magiclink"
    assert "/auth/v1/verify?" in link.properties.action_link and len(link.properties.email_otp) == 6
    by_hash = {"type": "magiclink", "token_hash": link.properties.hashed_token}
    assert new_client().verify_otp(by_hash).session is not None
    link = admin.generate_link({"type": "recovery", "email": "ann@example.com"})
    by_code = {"type": "recovery", "email": "ann@example.com", "token": link.properties.email_otp}
    assert new_client().verify_otp(by_code).session is not None

    invited = admin.invite_user_by_email("guest@example.com", {"data": {"team": "blue"}}).user
    assert invited.email == "guest@example.com" and invited.user_metadata == {"team": "blue"}
    mail = secret_mail(smtp, "guest@example.com", "invite")
    guest = new_client()
    accepted = guest.verify_otp(
        {"type": "invite", "email": "guest@example.com", "token": mail.code}
    )
    assert accepted.session is not None and accepted.user.id == invited.id
    guest.update_user({"password": PASSWORD})
    assert new_client().sign_in_with_password(credentials("guest@example.com")).session

    admin.sign_out(fresh.get_session().access_token, "local")
    refused(fresh.get_user, status=403, code="session_not_found")
    admin.delete_user(created.id)
    refused(admin.get_user_by_id, created.id, status=404, code="user_not_found")
    with pytest.raises(AuthApiError):  # the deleted account's sessions are gone with it
        signed_in.get_user()

    user_token = guest.get_session().access_token
    not_admin = new_client(headers={"Authorization": f"Bearer {user_token}"}).admin
    refused(not_admin.list_users, status=403, code="not_admin")
