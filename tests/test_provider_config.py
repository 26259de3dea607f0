"""Pure parts of providers and second factors: settings refusals (one line naming the setting),
GitHub's address choice, TOTP steps, recovery-code canonical form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest

from postgrest_auth.config import ConfigError, load_settings
from postgrest_auth.identities.github import verified_email
from postgrest_auth.mfa.recovery_codes import canonical
from postgrest_auth.mfa.totp import matching_step

from .support import SECRET

BASE = {"secret": SECRET}


def settings_with(providers: dict[str, object]) -> None:
    load_settings(overrides={**BASE, "providers": providers}, environ=False)


@pytest.mark.parametrize(
    ("providers", "message"),
    [
        (
            {"corp": {"kind": "oidc", "client_id": "x", "client_secret": "s"}},
            "providers.corp.issuer",
        ),
        ({"gh": {"kind": "github", "client_id": "x"}}, "exactly one of client_secret"),
        (
            {
                "gh": {
                    "kind": "github",
                    "client_id": "x",
                    "client_secret": "s",
                    "client_secret_env": "E",
                }
            },
            "exactly one of",
        ),
        ({"email": {"kind": "github", "client_id": "x", "client_secret": "s"}}, "providers.email"),
        ({"Bad Name": {"kind": "github", "client_id": "x", "client_secret": "s"}}, "lowercase"),
        ({"gh": {"kind": "myspace", "client_id": "x", "client_secret": "s"}}, "providers"),
        (
            {"gh": {"kind": "github", "client_id": "x", "client_secret_file": "/nonexistent/s"}},
            "cannot read /nonexistent/s",
        ),
        (
            {
                "gh": {
                    "kind": "github",
                    "client_id": "x",
                    "client_secret_env": "PA_TEST_UNSET_SECRET",
                }
            },
            "client secret is empty",
        ),
        (
            {
                "corp": {
                    "kind": "oidc",
                    "issuer": "http://login.example.com",
                    "client_id": "x",
                    "client_secret": "s",
                }
            },
            "must be https",
        ),
    ],
)
def test_provider_settings_refused_in_one_line(providers: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        settings_with(providers)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_provider_secret_from_a_file_is_never_shown(tmp_path: Path) -> None:
    secret_file = tmp_path / "github-secret"
    secret_file.write_text("gh-very-secret\n")
    settings = load_settings(
        overrides={
            **BASE,
            "providers": {
                "github": {
                    "kind": "github",
                    "client_id": "x",
                    "client_secret_file": str(secret_file),
                }
            },
        },
        environ=False,
    )
    assert "gh-very-secret" not in repr(settings) and "gh-very-secret" not in str(settings)


def test_an_issuer_stays_as_written_and_http_only_on_this_machine() -> None:
    settings = load_settings(
        overrides={
            **BASE,
            "providers": {
                "auth0": {
                    "kind": "oidc",
                    "issuer": "https://tenant.auth0.example/",
                    "client_id": "x",
                    "client_secret": "s",
                },
                "ghe": {
                    "kind": "github",
                    "url": "http://127.0.0.1:8000/",
                    "api_url": "http://localhost:8000/api/",
                    "client_id": "x",
                    "client_secret": "s",
                },
            },
        },
        environ=False,
    )
    assert settings.providers["auth0"].issuer == "https://tenant.auth0.example/"
    assert settings.providers["ghe"].url == "http://127.0.0.1:8000"
    assert settings.providers["ghe"].api_url == "http://localhost:8000/api"


def test_github_address_only_if_verified() -> None:
    assert verified_email([]) is None
    assert verified_email([{"email": "a@x.test", "primary": True, "verified": False}]) is None
    assert (
        verified_email(
            [
                {"email": "Old@X.test", "primary": False, "verified": True},
                {"email": "new@x.test", "primary": True, "verified": True},
            ]
        )
        == "new@x.test"
    )
    assert (
        verified_email(
            [
                {"email": "p@x.test", "primary": True, "verified": False},
                {"email": "Second@X.test", "primary": False, "verified": True},
            ]
        )
        == "second@x.test"
    )


def test_totp_steps_one_either_side_and_never_twice() -> None:
    secret = pyotp.random_base32()
    totp = pyotp.TOTP(secret)
    now = datetime(2026, 11, 24, 12, 0, 10, tzinfo=UTC)
    step = totp.timecode(now)
    assert matching_step(secret, totp.at(now), now, None) == step
    assert matching_step(secret, totp.at(now - timedelta(seconds=30)), now, None) == step - 1
    assert matching_step(secret, totp.at(now + timedelta(seconds=30)), now, None) == step + 1
    assert matching_step(secret, totp.at(now - timedelta(seconds=60)), now, None) is None
    assert matching_step(secret, totp.at(now), now, after=step) is None
    assert matching_step(secret, "12345", now, None) is None
    assert matching_step(secret, "abcdef", now, None) is None
    # Digits of another script: isdigit() says yes, the comparison would raise.
    arabic = "".join(chr(0x0660 + int(d)) for d in totp.at(now))
    assert matching_step(secret, arabic, now, None) is None


def test_recovery_codes_ignore_case_spaces_and_dashes() -> None:
    assert canonical(" AbCde-fGh23 ") == canonical("abcdefgh23") == "abcdefgh23"
