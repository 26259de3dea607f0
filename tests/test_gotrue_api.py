"""The GoTrue-compatible API over HTTP: the shapes, headers and rules the Supabase clients rely
on, PKCE, the redirect allow-list, and tokens shared with the original API and PostgREST.
(The real clients themselves are driven in test_supabase_js.py and test_supabase_py.py.)"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from .support import SECRET, PostgREST, Service, SmtpServer, body_text, make_settings

PASSWORD = "correct horse battery"
SITE = "http://app.test:5173"
VERSION = {"X-Supabase-Api-Version": "2024-01-01"}
# What every Supabase client request carries, GET /user and the empty POST /logout included.
CLIENT_HEADERS = {
    **VERSION,
    "apikey": "anon-key-is-ignored",
    "X-Client-Info": "supabase-js-node/2",
    "Content-Type": "application/json;charset=UTF-8",
}


def start(dsn: str, smtp: SmtpServer, **overrides: Any) -> Service:
    gotrue = {"site_url": SITE, "redirect_urls": ["https://other.test/callback/*"]}
    gotrue |= overrides.pop("gotrue", {})
    return Service(make_settings(dsn, smtp.port, gotrue=gotrue, **overrides)).start()


@pytest.fixture
def service(dsn: str, smtp: SmtpServer) -> Iterator[Service]:
    running = start(dsn, smtp)
    yield running
    running.stop()


@pytest.fixture
def api(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.base + "/v1", headers=CLIENT_HEADERS, timeout=30) as c:
        yield c


def bearer(session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['access_token']}"}


def sign_up(api: httpx.Client, email: str = "alice@example.com", **data: Any) -> dict[str, Any]:
    r = api.post("/signup", json={"email": email, "password": PASSWORD, "data": data})
    assert r.status_code == 200, r.text
    return r.json()


def sign_in(api: httpx.Client, email: str = "alice@example.com") -> dict[str, Any]:
    r = api.post("/token?grant_type=password", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["code"] == code, r.text
    assert r.headers["X-Supabase-Api-Version"] == "2024-01-01"


def mailed(smtp: SmtpServer, address: str, count: int) -> str:
    return body_text(smtp.mailbox.wait_for(address, count)[count - 1])


def link_in(text: str) -> str:
    return re.search(r"http://\S+/auth/v1/verify\?\S+", text).group(0)  # type: ignore[union-attr]


def test_session_and_user_shapes(api: httpx.Client) -> None:
    session = sign_up(api, name="Alice")
    assert session["token_type"] == "bearer" and session["expires_in"] > 90
    assert session["expires_at"] >= session["expires_in"]
    user = session["user"]
    assert user["email"] == "alice@example.com" and user["aud"] == "authenticated"
    assert user["user_metadata"] == {"name": "Alice"}
    assert user["app_metadata"] == {"provider": "email", "providers": ["email"]}
    [identity] = user["identities"]
    assert identity["provider"] == "email" and identity["user_id"] == user["id"]
    claims = jwt.decode(session["access_token"], SECRET, ["HS256"], audience="authenticated")
    assert claims["sub"] == user["id"] and claims["session_id"] == claims["sid"]
    assert claims["aal"] == "aal1" and claims["amr"][0]["method"] == "password"
    assert claims["is_anonymous"] is False and claims["user_metadata"] == {"name": "Alice"}
    r = api.get("/user", headers=bearer(session))
    assert r.status_code == 200 and r.json()["id"] == user["id"], r.text


def test_errors_carry_gotrue_codes_and_the_version_header(api: httpx.Client) -> None:
    sign_up(api)
    wrong = {"email": "alice@example.com", "password": "not it at all"}
    assert_error(api.post("/token?grant_type=password", json=wrong), 400, "invalid_credentials")
    again = {"email": "alice@example.com", "password": PASSWORD}
    assert_error(api.post("/signup", json=again), 422, "user_already_exists")
    short = {"email": "bob@example.com", "password": "short"}
    r = api.post("/signup", json=short)
    assert_error(r, 422, "weak_password")
    assert r.json()["weak_password"]["reasons"]
    assert_error(api.get("/user"), 401, "no_authorization")
    assert_error(api.get("/user", headers={"Authorization": "Bearer nope"}), 403, "bad_jwt")
    gone = {"refresh_token": "never-issued"}
    assert_error(
        api.post("/token?grant_type=refresh_token", json=gone), 400, "refresh_token_not_found"
    )


def test_a_stale_authorization_header_is_ignored_where_no_caller_is_needed(
    api: httpx.Client,
) -> None:
    """Older clients send the last user's token on sign-in and sign-up."""
    stale = {"Authorization": "Bearer not-a-token"}
    r = api.post("/signup", json={"email": "bob@example.com", "password": PASSWORD}, headers=stale)
    assert r.status_code == 200, r.text
    r = api.post(
        "/token?grant_type=password",
        json={"email": "bob@example.com", "password": PASSWORD},
        headers=stale,
    )
    assert r.status_code == 200, r.text


def test_updating_the_password_keeps_this_session_and_ends_the_others(
    api: httpx.Client, smtp: SmtpServer
) -> None:
    here = sign_up(api)
    there = sign_in(api)
    same = api.put("/user", json={"password": PASSWORD}, headers=bearer(here))
    assert_error(same, 422, "same_password")
    r = api.put("/user", json={"password": "a new long password"}, headers=bearer(here))
    assert r.status_code == 200, r.text
    assert api.get("/user", headers=bearer(here)).status_code == 200
    assert_error(api.get("/user", headers=bearer(there)), 403, "session_not_found")
    old = {"refresh_token": there["refresh_token"]}
    assert_error(
        api.post("/token?grant_type=refresh_token", json=old), 400, "refresh_token_not_found"
    )
    assert "password" in mailed(smtp, "alice@example.com", 2).lower()


def test_refresh_rotates_and_a_reused_token_ends_the_session(dsn: str, smtp: SmtpServer) -> None:
    service = start(dsn, smtp, sessions={"reuse_interval": 0})
    try:
        with httpx.Client(base_url=service.base + "/v1", headers=CLIENT_HEADERS) as api:
            first = sign_up(api)
            body = {"refresh_token": first["refresh_token"]}
            second = api.post("/token?grant_type=refresh_token", json=body)
            assert second.status_code == 200, second.text
            assert second.json()["refresh_token"] != first["refresh_token"]
            reused = api.post("/token?grant_type=refresh_token", json=body)
            assert_error(reused, 400, "refresh_token_already_used")
            assert_error(api.get("/user", headers=bearer(second.json())), 403, "session_not_found")
    finally:
        service.stop()


def test_sign_out_scopes(api: httpx.Client) -> None:
    a, b, c = sign_up(api), sign_in(api), sign_in(api)
    assert api.post("/logout?scope=others", headers=bearer(a)).status_code == 204
    assert api.get("/user", headers=bearer(a)).status_code == 200
    assert api.get("/user", headers=bearer(b)).status_code == 403
    assert api.post("/logout?scope=local", headers=bearer(a)).status_code == 204
    assert api.get("/user", headers=bearer(a)).status_code == 403
    d = sign_in(api)
    assert api.post("/logout", headers=bearer(d)).status_code == 204  # global by default
    assert api.get("/user", headers=bearer(c)).status_code == 403


def test_a_refused_address_change_changes_nothing_else(api: httpx.Client) -> None:
    """The address is tried first: when it is taken, the metadata and password sent with it
    are not saved either."""
    sign_up(api, "bob@example.com")
    alice = sign_up(api, team="red")
    r = api.put(
        "/user",
        json={"email": "bob@example.com", "data": {"team": "blue"}, "password": "a new password"},
        headers=bearer(alice),
    )
    assert r.status_code == 422, r.text
    assert api.get("/user", headers=bearer(alice)).json()["user_metadata"] == {"team": "red"}
    sign_in(api)  # the old password still opens the account


def test_email_confirmation_answers_the_bare_user(dsn: str, smtp: SmtpServer) -> None:
    service = start(dsn, smtp, email={"confirm": True})
    try:
        with httpx.Client(base_url=service.base + "/v1", headers=CLIENT_HEADERS) as api:
            r = api.post("/signup", json={"email": "carol@example.com", "password": PASSWORD})
            assert r.status_code == 200, r.text
            assert "access_token" not in r.json() and r.json()["email"] == "carol@example.com"
            creds = {"email": "carol@example.com", "password": PASSWORD}
            early = api.post("/token?grant_type=password", json=creds)
            assert_error(early, 400, "email_not_confirmed")
            link = link_in(mailed(smtp, "carol@example.com", 1))
            opened = httpx.get(link, follow_redirects=False)
            assert opened.status_code == 303, opened.text
            target, _, fragment = opened.headers["location"].partition("#")
            assert target == SITE
            session = {k: v[0] for k, v in parse_qs(fragment).items()}
            assert session["type"] == "signup" and session["refresh_token"]
            assert api.get("/user", headers=bearer(session)).json()["email_confirmed_at"]
    finally:
        service.stop()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_pkce_link_gives_a_code_only_its_verifier_exchanges(
    api: httpx.Client, smtp: SmtpServer
) -> None:
    sign_up(api)
    verifier, challenge = pkce_pair()
    r = api.post(
        "/recover?redirect_to=https://other.test/callback/reset",
        json={
            "email": "alice@example.com",
            "code_challenge": challenge,
            "code_challenge_method": "s256",
        },
    )
    assert r.status_code == 200 and r.json() == {}, r.text
    opened = httpx.get(link_in(mailed(smtp, "alice@example.com", 2)), follow_redirects=False)
    assert opened.status_code == 303, opened.text
    location = urlsplit(opened.headers["location"])
    assert location.netloc == "other.test" and location.path == "/callback/reset"
    assert "access_token" not in opened.headers["location"]
    [code] = parse_qs(location.query)["code"]

    wrong = {"auth_code": code, "code_verifier": pkce_pair()[0]}
    assert_error(api.post("/token?grant_type=pkce", json=wrong), 400, "bad_code_verifier")
    # the code was spent by the wrong try: a stolen code cannot be tried twice
    right = {"auth_code": code, "code_verifier": verifier}
    assert_error(api.post("/token?grant_type=pkce", json=right), 404, "flow_state_not_found")

    r = api.post(
        "/otp",
        json={
            "email": "alice@example.com",
            "create_user": False,
            "code_challenge": challenge,
            "code_challenge_method": "s256",
        },
    )
    assert r.status_code == 200, r.text
    opened = httpx.get(link_in(mailed(smtp, "alice@example.com", 3)), follow_redirects=False)
    [code] = parse_qs(urlsplit(opened.headers["location"]).query)["code"]
    r = api.post("/token?grant_type=pkce", json={"auth_code": code, "code_verifier": verifier})
    assert r.status_code == 200, r.text
    claims = jwt.decode(r.json()["access_token"], SECRET, ["HS256"], audience="authenticated")
    assert claims["amr"][0]["method"] == "magiclink"
    assert_error(api.post("/token?grant_type=pkce", json=right), 404, "flow_state_not_found")


def test_redirect_to_outside_the_allow_list_falls_back_to_the_site(
    api: httpx.Client, smtp: SmtpServer
) -> None:
    sign_up(api)
    r = api.post("/otp?redirect_to=https://evil.test/steal", json={"email": "alice@example.com"})
    assert r.status_code == 200, r.text
    text = mailed(smtp, "alice@example.com", 2)
    assert "evil.test" not in text
    opened = httpx.get(link_in(text) + "&redirect_to=https://evil.test/", follow_redirects=False)
    assert opened.headers["location"].startswith(SITE + "#access_token=")
    again = httpx.get(link_in(text), follow_redirects=False)  # spent: the error, to the site
    assert again.headers["location"].startswith(
        SITE + "#error=access_denied&error_code=otp_expired"
    )


def test_cors_preflight_allows_the_client_headers(dsn: str, smtp: SmtpServer) -> None:
    service = start(dsn, smtp, http={"cors_origins": [SITE]})
    try:
        r = httpx.options(
            service.base + "/v1/token?grant_type=password",
            headers={
                "Origin": SITE,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "apikey, x-client-info, x-supabase-api-version,"
                " authorization, content-type",
            },
        )
        assert r.status_code == 200, r.text
        allowed = r.headers["access-control-allow-headers"].lower()
        for header in ("apikey", "x-client-info", "x-supabase-api-version", "authorization"):
            assert header in allowed
    finally:
        service.stop()


def test_tokens_of_either_api_work_at_both(service: Service, api: httpx.Client) -> None:
    gotrue = sign_up(api)
    with service.client() as original:
        assert original.get("/user", headers=bearer(gotrue)).status_code == 200
        r = original.post("/login", json={"username": "alice@example.com", "password": PASSWORD})
        assert r.status_code == 200, r.text
        assert api.get("/user", headers=bearer(r.json())).json()["email"] == "alice@example.com"


@pytest.mark.parametrize("jwt_aud", [None, "authenticated"])
def test_postgrest_accepts_the_tokens_with_and_without_jwt_aud(
    dsn: str, smtp: SmtpServer, load_todos, postgrest_factory, jwt_aud: str | None
) -> None:  # type: ignore[no-untyped-def]
    service = start(dsn, smtp)
    try:
        load_todos()
        settings = service.settings
        rest = postgrest_factory(settings, pre_request="check_token_count")
        if jwt_aud is not None:  # a second PostgREST that checks the audience
            rest.stop()
            rest = PostgREST(dsn, settings, pre_request="check_token_count")
            rest.env["PGRST_JWT_AUD"] = jwt_aud
            rest.start()
        with httpx.Client(base_url=service.base + "/v1", headers=CLIENT_HEADERS) as api:
            session = sign_up(api)
            r = httpx.post(
                rest.url + "/todos",
                json={"description": "from the GoTrue API"},
                headers={**bearer(session), "Prefer": "return=representation"},
            )
            assert r.status_code == 201, r.text
            assert r.json()[0]["user_id"] == session["user"]["id"]
            api.post("/logout?scope=local", headers=bearer(session))
            r = httpx.get(rest.url + "/todos", headers=bearer(session))
            assert r.status_code == 401, r.text  # the ended session's token dies there too
        if jwt_aud is not None:
            rest.stop()
    finally:
        service.stop()


def test_disabled_gotrue_api_is_not_served(dsn: str, smtp: SmtpServer) -> None:
    service = start(dsn, smtp, gotrue={"enabled": False})
    try:
        assert httpx.get(service.base + "/v1/settings").status_code == 404
    finally:
        service.stop()


def test_settings_and_health(api: httpx.Client) -> None:
    settings = api.get("/settings").json()
    assert settings["external"]["email"] is True and settings["external"]["phone"] is False
    assert settings["mailer_autoconfirm"] is True
    assert api.get("/health").status_code == 200
    assert api.get("/.well-known/jwks.json").json() == {"keys": []}  # HS256 only
