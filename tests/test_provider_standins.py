"""Self-test of tests/provider_standins.py: each stand-in driven with plain httpx as the service
will drive it, so a failing sign-in test points at the service, not at its stand-in."""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from .provider_standins import (
    GITHUB_USERS,
    GITLAB_USERS,
    GOOGLE_USERS,
    GitHubStandIn,
    GitLabStandIn,
    GoogleStandIn,
    OidcStandIn,
    follow_to_callback,
    s256,
)
from .support import free_port, wait_until

CALLBACK = "http://127.0.0.1:9/auth/v1/callback"


@pytest.fixture(scope="module")
def github() -> Iterator[GitHubStandIn]:
    with GitHubStandIn("gh-client", "gh-secret") as standin:
        yield standin


@pytest.fixture(scope="module")
def google() -> Iterator[GoogleStandIn]:
    with GoogleStandIn("google-client.apps.example", "google-secret") as standin:
        yield standin


@pytest.fixture(scope="module")
def gitlab() -> Iterator[GitLabStandIn]:
    with GitLabStandIn("gitlab-client", "gitlab-secret") as standin:
        yield standin


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def basic(client_id: str, secret: str) -> dict[str, str]:
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)


# GitHub.


def github_code(
    http: httpx.Client, github: GitHubStandIn, challenge: str | None, scope: str
) -> dict[str, str]:
    """The callback query of an approved authorization request."""
    params = {
        "client_id": github.client_id,
        "redirect_uri": CALLBACK,
        "state": "st-1",
        "scope": scope,
    }
    if challenge:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    callback = follow_to_callback(http, f"{github.url}/login/oauth/authorize?{urlencode(params)}")
    assert callback.startswith(CALLBACK + "?")
    return query_of(callback)


def github_token(
    http: httpx.Client,
    github: GitHubStandIn,
    code: str,
    verifier: str | None,
    secret: str = "gh-secret",
    post: bool = False,
    redirect_uri: str = CALLBACK,
) -> dict[str, Any]:
    form = {"code": code, "redirect_uri": redirect_uri}
    if verifier:
        form["code_verifier"] = verifier
    headers = {"Accept": "application/json"}
    if post:
        form |= {"client_id": github.client_id, "client_secret": secret}
    else:
        headers |= basic(github.client_id, secret)
    answer = http.post(f"{github.url}/login/oauth/access_token", data=form, headers=headers)
    assert answer.status_code == 200, answer.text  # errors too, as GitHub does
    return answer.json()


def test_github_flow_with_pkce(http: httpx.Client, github: GitHubStandIn) -> None:
    github.sign_in_as(GITHUB_USERS["secondary"])
    verifier, challenge = pkce()
    callback = github_code(http, github, challenge, "read:user user:email")
    assert callback["state"] == "st-1"
    token = github_token(http, github, callback["code"], verifier)
    assert token["token_type"] == "bearer"
    assert token["scope"] == "read:user,user:email"
    assert token["access_token"].startswith("gho_")
    api = {"Authorization": f"Bearer {token['access_token']}"}
    user = http.get(f"{github.api_url}/user", headers=api).json()
    assert user["id"] == 1000002 and isinstance(user["id"], int)
    assert user["login"] == "secondary-verified" and user["email"] is None
    emails = http.get(f"{github.api_url}/user/emails", headers=api).json()
    assert {(e["email"], e["primary"], e["verified"]) for e in emails} == {
        ("claimed@example.test", True, False),
        ("proven@example.test", False, True),
    }
    assert github.token_requests[-1]["auth"] == "client_secret_basic"


def test_github_refusals(http: httpx.Client, github: GitHubStandIn) -> None:
    github.sign_in_as(GITHUB_USERS["unverified"])
    verifier, challenge = pkce()
    code = github_code(http, github, challenge, "user:email")["code"]
    wrong = github_token(http, github, code, verifier, secret="not-it")
    assert wrong["error"] == "incorrect_client_credentials"
    bad = github_token(http, github, code, secrets.token_urlsafe(48))
    assert bad["error"] == "bad_verification_code"
    again = github_token(http, github, code, verifier)  # spent by the wrong verifier
    assert again["error"] == "bad_verification_code"

    code = github_code(http, github, None, "user:email")["code"]
    moved = github_token(http, github, code, None, redirect_uri=CALLBACK + "x")
    assert moved["error"] == "redirect_uri_mismatch"

    code = github_code(http, github, None, "user:email")["code"]
    token = github_token(http, github, code, None, post=True)
    assert github.token_requests[-1]["auth"] == "client_secret_post"
    assert github_token(http, github, code, None, post=True)["error"] == "bad_verification_code"
    api = {"Authorization": f"token {token['access_token']}"}
    emails = http.get(f"{github.api_url}/user/emails", headers=api).json()
    assert [e["verified"] for e in emails] == [False]

    # Without Accept: application/json GitHub answers a form.
    code = github_code(http, github, None, "")["code"]
    answer = http.post(
        f"{github.url}/login/oauth/access_token",
        data={"code": code},
        headers=basic(github.client_id, "gh-secret"),
    )
    form = parse_qs(answer.text)
    assert form["token_type"] == ["bearer"] and "scope" not in form  # empty scope
    api = {"Authorization": f"Bearer {form['access_token'][0]}"}
    assert http.get(f"{github.api_url}/user", headers=api).status_code == 200
    assert http.get(f"{github.api_url}/user/emails", headers=api).status_code == 404
    bad_token = http.get(f"{github.api_url}/user", headers={"Authorization": "Bearer gho_x"})
    assert bad_token.status_code == 401 and bad_token.json()["message"] == "Bad credentials"


def test_github_deny(http: httpx.Client, github: GitHubStandIn) -> None:
    github.deny = True
    try:
        callback = github_code(http, github, None, "user:email")
    finally:
        github.deny = False
    assert callback["error"] == "access_denied" and callback["state"] == "st-1"
    assert "code" not in callback


# Google and GitLab (OpenID Connect).


def oidc_code(
    http: httpx.Client, standin: OidcStandIn, challenge: str, nonce: str
) -> dict[str, str]:
    discovery = http.get(f"{standin.url}/.well-known/openid-configuration").json()
    assert discovery["issuer"] == standin.url
    params = {
        "response_type": "code",
        "client_id": standin.client_id,
        "redirect_uri": CALLBACK,
        "scope": "openid email profile",
        "state": "st-2",
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    callback = follow_to_callback(
        http, f"{discovery['authorization_endpoint']}?{urlencode(params)}"
    )
    assert callback.startswith(CALLBACK + "?")
    return query_of(callback)


def oidc_token(
    http: httpx.Client,
    standin: OidcStandIn,
    code: str,
    verifier: str,
    secret: str,
    post: bool = False,
) -> httpx.Response:
    discovery = http.get(f"{standin.url}/.well-known/openid-configuration").json()
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    headers = {"Accept": "application/json"}
    if post:
        form |= {"client_id": standin.client_id, "client_secret": secret}
    else:
        headers |= basic(standin.client_id, secret)
    return http.post(discovery["token_endpoint"], data=form, headers=headers)


@pytest.mark.parametrize("kind", ["google", "gitlab"])
def test_oidc_flow(http: httpx.Client, kind: str, request: pytest.FixtureRequest) -> None:
    standin: OidcStandIn = request.getfixturevalue(kind)
    users = GOOGLE_USERS if kind == "google" else GITLAB_USERS
    secret = f"{kind}-secret"
    standin.sign_in_as(users["alice"])
    verifier, challenge = pkce()
    nonce = secrets.token_urlsafe(16)
    callback = oidc_code(http, standin, challenge, nonce)
    assert callback["state"] == "st-2"
    answer = oidc_token(http, standin, callback["code"], verifier, secret, post=kind == "gitlab")
    assert answer.status_code == 200, answer.text
    token = answer.json()
    assert token["token_type"] == "Bearer"

    discovery = http.get(f"{standin.url}/.well-known/openid-configuration").json()
    key = jwt.PyJWKClient(discovery["jwks_uri"]).get_signing_key_from_jwt(token["id_token"])
    claims = jwt.decode(
        token["id_token"],
        key.key,
        algorithms=["RS256"],
        audience=standin.client_id,
        issuer=standin.url,
    )
    assert claims["nonce"] == nonce
    assert claims["sub"].isdigit() and claims["sub"] == users["alice"]["sub"]
    assert claims["email"] == "alice@example.test" and claims["email_verified"] is True
    assert claims["name"] == "Alice Example" and claims["picture"].startswith("https://")
    info = http.get(
        discovery["userinfo_endpoint"], headers={"Authorization": f"Bearer {token['access_token']}"}
    ).json()
    assert info["sub"] == claims["sub"] and info["email"] == claims["email"]
    if kind == "gitlab":
        assert claims["exp"] - claims["iat"] == 120
        assert claims["nickname"] == "alice" and claims["groups_direct"] == info["groups"]
        assert standin.token_requests[-1]["auth"] == "client_secret_post"
    else:
        assert standin.token_requests[-1]["auth"] == "client_secret_basic"
    refused = http.get(discovery["userinfo_endpoint"], headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401


@pytest.mark.parametrize("kind", ["google", "gitlab"])
def test_oidc_refusals(http: httpx.Client, kind: str, request: pytest.FixtureRequest) -> None:
    standin: OidcStandIn = request.getfixturevalue(kind)
    secret = f"{kind}-secret"
    standin.sign_in_as((GOOGLE_USERS if kind == "google" else GITLAB_USERS)["mallory"])
    verifier, challenge = pkce()
    code = oidc_code(http, standin, challenge, "n")["code"]
    wrong = oidc_token(http, standin, code, verifier, "not-it")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    good = oidc_token(http, standin, code, verifier, secret)
    assert good.status_code == 200
    claims = jwt.decode(good.json()["id_token"], options={"verify_signature": False})
    assert claims["email_verified"] is False
    reused = oidc_token(http, standin, code, verifier, secret)
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")

    code = oidc_code(http, standin, challenge, "n")["code"]
    mismatch = oidc_token(http, standin, code, secrets.token_urlsafe(48), secret)
    assert (mismatch.status_code, mismatch.json()["error"]) == (400, "invalid_grant")

    standin.deny = True
    try:
        denied = oidc_code(http, standin, challenge, "n")
    finally:
        standin.deny = False
    assert denied["error"] == "access_denied" and "code" not in denied


def test_id_token_hooks(http: httpx.Client, google: GoogleStandIn) -> None:
    """The hooks tests of the service's id_token checks lean on."""
    google.sign_in_as(GOOGLE_USERS["alice"])
    google.id_token_overrides = {"aud": "someone-else", "nonce": None}
    google.sign_with_unknown_key = True
    try:
        verifier, challenge = pkce()
        code = oidc_code(http, google, challenge, "n")["code"]
        id_token = oidc_token(http, google, code, verifier, "google-secret").json()["id_token"]
    finally:
        google.id_token_overrides = {}
        google.sign_with_unknown_key = False
    claims = jwt.decode(id_token, options={"verify_signature": False})
    assert claims["aud"] == "someone-else" and "nonce" not in claims
    key = jwt.PyJWK(google.jwks()["keys"][0])
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(id_token, key.key, algorithms=["RS256"], audience="someone-else")


def test_follow_through_a_service_redirect(http: httpx.Client, gitlab: GitLabStandIn) -> None:
    """follow_to_callback starts at the service's sign-in link, which redirects to the
    provider, and stops at the provider's redirect back without requesting it."""
    gitlab.sign_in_as(GITLAB_USERS["alice"])
    params = {
        "response_type": "code",
        "client_id": gitlab.client_id,
        "redirect_uri": CALLBACK,
        "scope": "openid",
        "state": "from-service",
    }

    async def sign_in(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{gitlab.url}/oauth/authorize?{urlencode(params)}", 302)

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/authorize", sign_in)]),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=10)
        callback = follow_to_callback(http, f"http://127.0.0.1:{port}/authorize")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    query = query_of(callback)
    assert callback.startswith(CALLBACK) and query["state"] == "from-service" and query["code"]


def test_registered_callbacks(http: httpx.Client) -> None:
    """With `redirect_uris` set, /authorize refuses others (GitHub takes paths below one)."""
    with GitHubStandIn("gh", "s", redirect_uris=["http://127.0.0.1:9/auth/v1"]) as github:
        github.sign_in_as(GITHUB_USERS["octocat"])
        base = f"{github.url}/login/oauth/authorize?client_id=gh&redirect_uri="
        assert follow_to_callback(http, base + CALLBACK).startswith(CALLBACK + "?code=")
        elsewhere = http.get(base + "http://127.0.0.1:9/other")
        assert elsewhere.status_code == 400 and not elsewhere.is_redirect
        unknown = http.get(f"{github.url}/login/oauth/authorize?client_id=nope")
        assert unknown.status_code == 404
