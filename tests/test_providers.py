"""Sign-in with an external provider: the service against a real OpenID Provider (panva's
oidc-provider, started by tests/oidc_support.py) and the real PostgREST. Every flow the browser
would take is driven with httpx: our /authorize, the provider's login and consent pages, our
callback, the code exchange."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from .email_flows import audit_events, secret_to
from .oidc_support import OidcProvider, forget_provider_session, log_in
from .provider_standins import (
    GITHUB_USERS,
    GITLAB_USERS,
    GOOGLE_USERS,
    GitHubStandIn,
    GitLabStandIn,
    GoogleStandIn,
    StandIn,
    follow_to_callback,
)
from .support import PostgREST, Service, SmtpServer, free_port, make_settings, run_sql

SITE = "http://app.test:5173"
PASSWORD = "correct horse battery"
HEADERS = {"X-Supabase-Api-Version": "2024-01-01"}


def provider_settings(issuer: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "oidc",
        "issuer": issuer,
        "client_id": "postgrest-auth-test",
        "client_secret": "not-used-here",
        **extra,
    }


@pytest.fixture
def dead_provider_service(dsn: str, smtp: SmtpServer) -> Iterator[Service]:
    """A provider configured at an address where nothing listens."""
    issuer = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(
        dsn,
        smtp.port,
        gotrue={"site_url": SITE},
        providers={"corp": provider_settings(issuer)},
    )
    running = Service(settings).start()
    yield running
    running.stop()


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_refusals_before_any_provider_is_asked(dead_provider_service: Service) -> None:
    with httpx.Client(base_url=dead_provider_service.base, headers=HEADERS, timeout=30) as http:
        r = http.get("/v1/authorize", params={"provider": "nope", "redirect_to": SITE})
        assert r.status_code == 400 and r.json()["code"] == "provider_disabled"
        r = http.get("/authorize", params={"provider": "nope"})
        assert r.status_code == 400 and r.json()["code"] == "provider_disabled"
        # The provider is down: the browser goes back to the app with the reason, not a 500.
        r = http.get("/v1/authorize", params={"provider": "corp", "redirect_to": SITE + "/back"})
        assert r.status_code == 302
        location = r.headers["location"]
        assert location.startswith(SITE + "/back?")
        error = query_of(location)
        assert (
            error["error"] == "server_error"
            and "could not be reached" in error["error_description"]
        )
        # A redirect_to elsewhere falls back to the site URL.
        r = http.get(
            "/v1/authorize", params={"provider": "corp", "redirect_to": "https://evil.test/"}
        )
        assert r.headers["location"].startswith(SITE + "?")
        # A callback with a state nobody issued: back to the site with an error.
        r = http.get("/v1/callback", params={"state": "forged", "code": "x"})
        assert r.status_code == 303 and r.headers["location"].startswith(SITE + "?")
        assert query_of(r.headers["location"])["error"] == "invalid_request"
        settings = http.get("/v1/settings").json()
        assert settings["external"]["corp"] is True and settings["external"]["github"] is False
        assert http.get("/providers").json() == {
            "providers": [{"name": "corp", "display_name": "corp"}]
        }


# --- Against the real OpenID Provider ---------------------------------------------------------


@dataclass
class Stack:
    """The service with the real OpenID Provider configured as `corp`."""

    service: Service
    provider: OidcProvider

    def gotrue(self) -> httpx.Client:
        return httpx.Client(base_url=self.service.base + "/v1", headers=HEADERS, timeout=30)


@pytest.fixture
def stack_factory(dsn: str, smtp: SmtpServer) -> Iterator[Callable[..., Stack]]:
    """Start a provider and a service that trusts it; `**overrides` go into the settings."""
    started: list[Stack] = []

    def start(**overrides: Any) -> Stack:
        provider = OidcProvider([])
        settings = make_settings(
            dsn,
            smtp.port,
            **{"gotrue": {"site_url": SITE}, "providers": {"corp": provider.settings()}},
            **overrides,
        )
        service = Service(settings)
        provider.redirect_uris = [service.base + "/v1/callback"]
        stack = Stack(service, provider)
        started.append(stack)
        provider.start()
        service.start()
        return stack

    yield start
    for stack in started:
        stack.service.stop()
        stack.provider.stop()


@pytest.fixture
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def provider_url(browser: httpx.Client, stack: Stack, **params: str) -> str:
    """Our redirect to the provider, checked to carry state, nonce and our own PKCE. The
    flow's cookie stays in `browser`, which must be the one that comes back."""
    r = browser.get(
        stack.service.base + "/v1/authorize",
        params={"provider": "corp", "redirect_to": SITE + "/back", **params},
    )
    assert r.status_code == 302, r.text
    sent = query_of(r.headers["location"])
    assert sent["state"] and sent["nonce"] and sent["code_challenge_method"] == "S256"
    assert sent["code_challenge"] != params.get("code_challenge")  # ours, not the frontend's
    return r.headers["location"]


def back_from_provider(
    stack: Stack, browser: httpx.Client, url: str, login: str = "alice", cancel: bool = False
) -> httpx.Response:
    """The user at the provider, then our callback's answer (not followed)."""
    callback = log_in(browser, url, login, cancel=cancel)
    assert callback.startswith(stack.service.base + "/v1/callback?"), callback
    return browser.get(callback)


def fragment_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).fragment).items()}


def user_count(dsn: str) -> int:
    return run_sql(dsn, "select count(*) as n from auth.users")[0]["n"]


def test_new_user_signs_in_with_a_code_then_again_implicitly(
    stack: Stack, dsn: str, load_todos: Any, postgrest_factory: Any
) -> None:
    verifier, challenge = pkce_pair()
    with stack.gotrue() as api, httpx.Client(timeout=30) as browser:
        url = provider_url(browser, stack, code_challenge=challenge, code_challenge_method="s256")
        assert query_of(url)["redirect_uri"] == stack.service.base + "/v1/callback"
        back = back_from_provider(stack, browser, url)
        assert back.status_code == 303 and back.headers["location"].startswith(SITE + "/back?")
        code = query_of(back.headers["location"])["code"]
        # The callback in another browser (a link someone was sent) is refused.
        with httpx.Client(timeout=30) as elsewhere:
            url = provider_url(browser, stack)
            stolen = log_in(browser, url, "alice")
            refused = query_of(elsewhere.get(stolen).headers["location"])
        assert (refused["error"], refused["error_code"]) == ("invalid_request", "bad_oauth_state")
        assert "another browser" in refused["error_description"]
        # A callback is taken once: its state was spent.
        again = query_of(browser.get(str(back.request.url)).headers["location"])
        assert (again["error"], again["error_code"]) == ("invalid_request", "bad_oauth_state")
        exchange = {"auth_code": code, "code_verifier": verifier}
        r = api.post("/token?grant_type=pkce", json=exchange)
        assert r.status_code == 200, r.text
        assert api.post("/token?grant_type=pkce", json=exchange).status_code == 404  # once
        session = r.json()
        user = session["user"]
        assert user["email"] == "alice@example.test" and user["email_confirmed_at"]
        assert user["app_metadata"]["provider"] == "corp"
        # The address is a way in too (mailed links and codes): GoTrue's `email` identity.
        assert user["app_metadata"]["providers"] == ["corp", "email"]
        assert [i["provider"] for i in user["identities"]] == ["email", "corp"]
        assert user["identities"][1]["identity_data"]["sub"] == "alice"
        token = jwt.decode(session["access_token"], options={"verify_signature": False})
        assert token["aal"] == "aal1" and token["amr"][0]["method"] == "oauth"

        # Signed in at the provider already: no form this time, the same account, and without
        # a frontend challenge the session comes in the fragment.
        back = back_from_provider(stack, browser, provider_url(browser, stack))
        fragment = fragment_of(back.headers["location"])
        assert fragment["refresh_token"] and fragment["type"] == "oauth"
        r = api.get("/user", headers={"Authorization": f"Bearer {fragment['access_token']}"})
        assert r.json()["id"] == user["id"]
    assert user_count(dsn) == 1

    load_todos()
    rest: PostgREST = postgrest_factory(stack.service.settings, pre_request="check_token_count")
    with httpx.Client(base_url=rest.url, timeout=30) as http:
        headers = {"Authorization": f"Bearer {session['access_token']}"}
        assert http.get("/todos", headers=headers).status_code == 200


def test_verified_address_joins_its_confirmed_account_unverified_never(
    stack: Stack, dsn: str
) -> None:
    with stack.gotrue() as api:
        for email in ("alice@example.test", "victim@example.test"):
            r = api.post("/signup", json={"email": email, "password": PASSWORD})
            assert r.status_code == 200, r.text
        # Alice's account has not confirmed its address: the provider's word is not enough to
        # hand it over, and nothing changes.
        run_sql(dsn, "update auth.users set email_confirmed_at = null")
        with httpx.Client(timeout=30) as browser:
            back = back_from_provider(stack, browser, provider_url(browser, stack))
        refused = query_of(back.headers["location"])
        assert (refused["error"], refused["error_code"]) == ("access_denied", "email_exists")
        assert "confirm" in refused["error_description"]
        assert run_sql(dsn, "select count(*) as n from auth.identities")[0]["n"] == 0

        run_sql(dsn, "update auth.users set email_confirmed_at = now()")
        with httpx.Client(timeout=30) as browser:
            back = back_from_provider(stack, browser, provider_url(browser, stack))
        joined = fragment_of(back.headers["location"])
        r = api.get("/user", headers={"Authorization": f"Bearer {joined['access_token']}"})
        alice = r.json()
        assert alice["email"] == "alice@example.test"
        assert alice["app_metadata"]["providers"] == ["corp", "email"]
        alice_id = alice["id"]
        # Her password still works too.
        r = api.post(
            "/token?grant_type=password",
            json={"email": "alice@example.test", "password": PASSWORD},
        )
        assert r.status_code == 200 and r.json()["user"]["id"] == alice_id

        # Mallory claims the victim's address, unverified: a new account without an address.
        with httpx.Client(timeout=30) as browser:
            back = back_from_provider(stack, browser, provider_url(browser, stack), login="mallory")
        mallory = fragment_of(back.headers["location"])
        r = api.get("/user", headers={"Authorization": f"Bearer {mallory['access_token']}"})
        assert r.json()["email"] in ("", None) and r.json()["id"] != alice_id
    victim = run_sql(dsn, "select id from auth.users where email = 'victim@example.test'")
    assert len(victim) == 1
    assert run_sql(dsn, "select count(*) as n from auth.users")[0]["n"] == 3


def test_what_the_provider_sends_back_is_checked(stack: Stack, dsn: str) -> None:
    # An id_token whose signature is not the provider's key.
    stack.provider.tamper("signature")
    with httpx.Client(timeout=30) as browser:
        back = back_from_provider(stack, browser, provider_url(browser, stack))
    assert back.headers["location"].startswith(SITE + "/back?")
    refused = query_of(back.headers["location"])
    assert refused["error"] == "invalid_request" and "id_token" in refused["error_description"]
    stack.provider.tamper("none")

    # A nonce other than ours (as if an id_token of another sign-in were replayed).
    with httpx.Client(timeout=30) as browser:
        url = provider_url(browser, stack)
        forged = url.replace(f"nonce={query_of(url)['nonce']}", "nonce=someone-elses")
        back = back_from_provider(stack, browser, forged)
    assert "id_token" in query_of(back.headers["location"])["error_description"]

    # The user cancels at the provider.
    with httpx.Client(timeout=30) as browser:
        back = back_from_provider(stack, browser, provider_url(browser, stack), cancel=True)
    assert query_of(back.headers["location"])["error"] == "access_denied"

    # The provider goes down between the login and the code exchange.
    with httpx.Client(timeout=30) as browser:
        callback = log_in(browser, provider_url(browser, stack), "alice")
        stack.provider.stop()
        back = browser.get(callback)
    failure = query_of(back.headers["location"])
    assert failure["error"] == "server_error" and "reached" in failure["error_description"]
    assert user_count(dsn) == 0
    reasons = [
        detail.get("reason")
        for event, _, detail in audit_events(dsn)
        if event == "provider_sign_in_failed"
    ]
    assert reasons.count("invalid_request") == 2 and "server_error" in reasons


def test_link_and_unlink_an_identity(stack: Stack, dsn: str) -> None:
    with stack.gotrue() as api, httpx.Client(timeout=30) as browser:
        r = api.post("/signup", json={"email": "someone@example.com", "password": PASSWORD})
        session = r.json()
        bearer = {"Authorization": f"Bearer {session['access_token']}"}
        r = api.get(
            "/user/identities/authorize",
            params={"provider": "corp", "redirect_to": SITE, "skip_http_redirect": "true"},
            headers=bearer,
        )
        assert r.status_code == 200, r.text
        # Handed to someone else's browser, the link is refused there: nobody's identity can
        # be slipped into the account that asked (nor its session into their browser).
        back = back_from_provider(stack, browser, r.json()["url"])
        refused = query_of(back.headers["location"])
        assert (refused["error"], refused["error_code"]) == ("invalid_request", "bad_oauth_state")
        assert api.get("/user", headers=bearer).json()["identities"][-1]["provider"] == "email"
        r = api.get(
            "/user/identities/authorize",
            params={"provider": "corp", "redirect_to": SITE, "skip_http_redirect": "true"},
            headers=bearer,
        )
        forget_provider_session(browser)
        back = back_from_provider(stack, api, r.json()["url"])  # the browser that asked
        assert "access_token" in fragment_of(back.headers["location"]), back.headers
        user = api.get("/user", headers=bearer).json()
        corp = [i for i in user["identities"] if i["provider"] == "corp"]
        assert len(corp) == 1 and user["email"] == "someone@example.com"

        # The same provider identity cannot open a second account by linking.
        r = api.post("/signup", json={"email": "other@example.com", "password": PASSWORD})
        other = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = api.get(
            "/user/identities/authorize",
            params={"provider": "corp", "redirect_to": SITE, "skip_http_redirect": "true"},
            headers=other,
        )
        back = back_from_provider(stack, api, r.json()["url"])
        assert query_of(back.headers["location"])["error_code"] == "identity_already_exists"

        # Signing in at the provider now opens the linked account.
        back = back_from_provider(stack, browser, provider_url(browser, stack))
        signed = fragment_of(back.headers["location"])
        by_provider = {"Authorization": f"Bearer {signed['access_token']}"}
        assert api.get("/user", headers=by_provider).json()["id"] == user["id"]

        r = api.delete(f"/user/identities/{corp[0]['identity_id']}", headers=bearer)
        assert r.status_code == 200, r.text
        assert [i["provider"] for i in r.json()["identities"]] == ["email"]
        r = api.delete(f"/user/identities/{corp[0]['identity_id']}", headers=bearer)
        assert r.status_code == 422 and r.json()["code"] == "identity_not_found"
    assert run_sql(dsn, "select count(*) as n from auth.identities")[0]["n"] == 0


def test_original_api_in_cookie_mode(stack_factory: Callable[..., Stack], dsn: str) -> None:
    stack = stack_factory(cookie={"enabled": True, "secure": False})
    cookie = stack.service.settings.cookie.name
    with stack.service.client() as http:
        assert http.get("/providers").json()["providers"] == [
            {"name": "corp", "display_name": "corp"}
        ]
        r = http.get("/authorize", params={"provider": "corp", "redirect_to": SITE})
        assert r.status_code == 302
        back = back_from_provider(stack, http, r.headers["location"])
        assert back.status_code == 303 and back.headers["location"] == SITE
        assert "#" not in back.headers["location"] and http.cookies.get(cookie)
        r = http.get("/identities")
        assert r.status_code == 200, r.text
        (identity,) = r.json()["identities"]
        assert identity["provider"] == "corp" and identity["email"] == "alice@example.test"
        # Unlinked, the account keeps its confirmed address as a way in.
        assert http.delete(f"/identities/{identity['id']}").status_code == 200
        assert http.delete(f"/identities/{identity['id']}").status_code == 404
        assert http.get("/identities").json() == {"identities": []}
        # A provider-only account without an address keeps its one identity.
        r = http.get("/authorize", params={"provider": "corp", "redirect_to": SITE})
        forget_provider_session(http)
        back = back_from_provider(stack, http, r.headers["location"], login="mallory")
        (identity,) = http.get("/identities").json()["identities"]
        r = http.delete(f"/identities/{identity['id']}")
        assert r.status_code == 409, r.text


# --- The presets, against local stand-ins of GitHub, Google and GitLab ------------------------


@pytest.mark.parametrize(
    ("kind", "user", "email"),
    [
        (GitHubStandIn, GITHUB_USERS["private"], "private@example.test"),
        (GitHubStandIn, GITHUB_USERS["secondary"], "proven@example.test"),
        (GitHubStandIn, GITHUB_USERS["unverified"], None),
        (GoogleStandIn, GOOGLE_USERS["alice"], "alice@example.test"),
        (GitLabStandIn, GITLAB_USERS["alice"], "alice@example.test"),
    ],
)
def test_presets_sign_in(
    dsn: str, smtp: SmtpServer, kind: type[StandIn], user: dict[str, Any], email: str | None
) -> None:
    with kind("our-client", "our-secret") as standin:
        service = Service(
            make_settings(
                dsn,
                smtp.port,
                gotrue={"site_url": SITE},
                providers={standin.name: standin.provider_settings()},
            )
        )
        standin.redirect_uris = [service.base + "/v1/callback"]
        standin.sign_in_as(user)
        service.start()
        try:
            with httpx.Client(timeout=30, headers=HEADERS) as http:
                url = f"{service.base}/v1/authorize?provider={standin.name}&redirect_to={SITE}"
                callback = follow_to_callback(http, url)
                back = http.get(callback)
            session = fragment_of(back.headers["location"])
            assert session.get("access_token"), back.headers["location"]
            with service.client(headers=HEADERS) as api:
                bearer = {"Authorization": f"Bearer {session['access_token']}"}
                profile = api.get("/v1/user", headers=bearer).json()
            assert profile["app_metadata"]["provider"] == standin.name
            assert (profile["email"] or None) == email
        finally:
            service.stop()


def test_a_provider_account_sets_a_password_through_recovery(
    stack: Stack, smtp: SmtpServer
) -> None:
    with stack.gotrue() as api, httpx.Client(timeout=30) as browser:
        back_from_provider(stack, browser, provider_url(browser, stack))
        r = api.post(
            "/token?grant_type=password",
            json={"email": "alice@example.test", "password": PASSWORD},
        )
        assert r.status_code == 400  # no password yet
        assert api.post("/recover", json={"email": "alice@example.test"}).status_code == 200
        mailed = secret_to(smtp, "alice@example.test", "Recover")
        assert "None" not in mailed.text and "Hello ," not in mailed.text, mailed.text
        r = api.post("/verify", json={"type": "recovery", "token_hash": mailed.token_hash})
        assert r.status_code == 200, r.text
        recovered = {"Authorization": f"Bearer {r.json()['access_token']}"}
        assert api.put("/user", json={"password": PASSWORD}, headers=recovered).status_code == 200
        r = api.post(
            "/token?grant_type=password",
            json={"email": "alice@example.test", "password": PASSWORD},
        )
        assert r.status_code == 200, r.text
        assert [i["provider"] for i in r.json()["user"]["identities"]] == ["email", "corp"]
