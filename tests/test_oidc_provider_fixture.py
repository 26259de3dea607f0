"""The OpenID Provider stand-in (tests/oidc_support.py) on its own, played as a relying party
would: discovery, authorization code flow with PKCE S256, state and nonce, the development login
and consent pages, the code exchanged with client_secret_basic, the id_token checked against
the provider's JWKS. The sign-in tests rely on exactly these behaviours, so they are pinned
here, where a failure points at the stand-in rather than at the service."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from .oidc_support import OidcProvider, forget_provider_session, log_in

REDIRECT_URI = "http://127.0.0.1:9/cb"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider([REDIRECT_URI]) as running:
        yield running


def authorization_url(
    provider: OidcProvider, metadata: dict[str, Any]
) -> tuple[str, str, str, str]:
    """A fresh authorization request: its URL, state, nonce and PKCE code verifier."""
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    query = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email profile",
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return metadata["authorization_endpoint"] + "?" + urlencode(query), state, nonce, verifier


def sign_in(provider: OidcProvider, login: str) -> tuple[dict[str, Any], str]:
    """The whole flow as `login` in a fresh browser: the token response and the nonce sent."""
    metadata = provider.metadata()
    url, state, nonce, verifier = authorization_url(provider, metadata)
    with httpx.Client(timeout=10) as browser:
        final = log_in(browser, url, login)
    assert final.startswith(REDIRECT_URI + "?"), final
    query = parse_qs(urlsplit(final).query)
    assert query["state"] == [state], query
    assert query["iss"] == [provider.issuer], query  # RFC 9207
    answer = httpx.post(
        metadata["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(provider.client_id, provider.client_secret),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json(), nonce


def verified_claims(provider: OidcProvider, id_token: str) -> dict[str, Any]:
    jwks = jwt.PyJWKClient(provider.metadata()["jwks_uri"], cache_keys=False)
    return jwt.decode(
        id_token,
        jwks.get_signing_key_from_jwt(id_token).key,
        algorithms=["RS256"],
        audience=provider.client_id,
        issuer=provider.issuer,
        options={"require": ["exp", "iat", "sub", "nonce"]},
    )


def test_discovery(provider: OidcProvider) -> None:
    metadata = provider.metadata()
    assert metadata["issuer"] == provider.issuer
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert "client_secret_basic" in metadata["token_endpoint_auth_methods_supported"]
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]


@pytest.mark.parametrize(
    ("login", "sub", "email", "verified", "name"),
    [
        ("alice", "alice", "alice@example.test", True, "Alice"),
        ("victim@example.test", "mallory", "victim@example.test", False, "Mallory"),
    ],
)
def test_code_flow_id_token_claims(
    provider: OidcProvider, login: str, sub: str, email: str, verified: bool, name: str
) -> None:
    tokens, nonce = sign_in(provider, login)
    assert tokens["token_type"].lower() == "bearer"
    claims = verified_claims(provider, tokens["id_token"])
    assert claims["sub"] == sub
    assert claims["nonce"] == nonce
    assert claims["email"] == email
    assert claims["email_verified"] is verified
    assert claims["name"] == name
    userinfo = httpx.get(
        provider.metadata()["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["email_verified"] is verified


def test_pkce_is_required(provider: OidcProvider) -> None:
    url, _, _, _ = authorization_url(provider, provider.metadata())
    without = httpx.URL(url).copy_remove_param("code_challenge")
    without = without.copy_remove_param("code_challenge_method")
    with httpx.Client(timeout=10) as browser:
        final = log_in(browser, str(without), "alice")
    assert parse_qs(urlsplit(final).query)["error"] == ["invalid_request"], final


def test_tampered_signature_is_refused(provider: OidcProvider) -> None:
    provider.tamper("signature")
    try:
        tokens, _ = sign_in(provider, "alice")
        with pytest.raises(jwt.InvalidSignatureError):
            verified_claims(provider, tokens["id_token"])
    finally:
        provider.tamper("none")
    tokens, _ = sign_in(provider, "alice")
    assert verified_claims(provider, tokens["id_token"])["sub"] == "alice"


def test_cancel_and_unknown_login(provider: OidcProvider) -> None:
    url, state, _, _ = authorization_url(provider, provider.metadata())
    with httpx.Client(timeout=10) as browser:
        final = log_in(browser, url, "alice", cancel=True)
    query = parse_qs(urlsplit(final).query)
    assert query["error"] == ["access_denied"] and query["state"] == [state], final
    url, _, _, _ = authorization_url(provider, provider.metadata())
    with httpx.Client(timeout=10) as browser, pytest.raises(AssertionError, match="no account"):
        log_in(browser, url, "nobody")


def test_session_is_kept_until_forgotten(provider: OidcProvider) -> None:
    """Within one client the provider's session signs the next request in without a page."""
    with httpx.Client(timeout=10) as browser:
        log_in(browser, authorization_url(provider, provider.metadata())[0], "alice")
        again = log_in(browser, authorization_url(provider, provider.metadata())[0], "nobody")
        assert "code=" in again, again  # no login form: "nobody" was never typed
        forget_provider_session(browser)
        with pytest.raises(AssertionError, match="no account"):
            log_in(browser, authorization_url(provider, provider.metadata())[0], "nobody")
