"""Every credential a client can present is limited: reset tokens and refresh tokens too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support import Service, SmtpServer, make_settings, run_sql, sign_up


@pytest.fixture
def limited(dsn: str, smtp: SmtpServer) -> Iterator[Service]:
    settings = make_settings(
        dsn,
        smtp.port,
        rate_limit={
            "per_account": {"requests": 3, "window": 300},
            "per_address": {"requests": 5, "window": 300},
        },
    )
    running = Service(settings).start()
    try:
        yield running
    finally:
        running.stop()


def test_reset_token_guesses_are_limited_per_account(limited: Service, dsn: str) -> None:
    with limited.client() as client:
        sign_up(client, "alice", "alice@example.com")
        guess = {
            "username": "alice",
            "reset_token": "not.a.token",
            "new_password": "a new password",
            "new_password_confirm": "a new password",
        }
        codes = [client.post("/change_password", json=guess).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429], codes
        refused = client.post("/change_password", json=guess)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    [row] = run_sql(dsn, "select token_count from auth.users")
    assert row["token_count"] == 0  # nothing changed


def test_unknown_refresh_tokens_are_limited_per_address(limited: Service) -> None:
    with limited.client() as client:
        body = sign_up(client, "alice", "alice@example.com")
        codes = [
            client.post("/refresh_token", json={"refresh_token": f"guess-{i}"}).status_code
            for i in range(7)
        ]
        assert codes[:5] == [401] * 5 and codes[5:] == [429, 429], codes
        # Only failures are counted, after the lookup: the refresh path stays one statement,
        # and a 256-bit token is not guessed in any number of windows anyway.
        good = client.post("/refresh_token", json={"refresh_token": body["refresh_token"]})
        assert good.status_code == 200, good.text
