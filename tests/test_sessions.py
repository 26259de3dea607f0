"""Sessions in bearer mode: every access token names its session (sid), and ending the session
ends the token at the service and at the real PostgREST (`pre-request = auth.check_token_count`)."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest

from .support import SECRET, Service, make_settings, password_change, run_sql, wait_until

PASSWORD = "correct horse battery"


@pytest.fixture
def rest(service: Service, load_todos, postgrest_factory) -> Any:  # type: ignore[no-untyped-def]
    """PostgREST in bearer mode over the test database, after the example schema is loaded."""
    load_todos()
    return postgrest_factory(service.settings, pre_request="check_token_count")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, SECRET, algorithms=["HS256"], audience="authenticated")


def log_in(
    client: httpx.Client, login: str = "alice", headers: dict[str, str] | None = None
) -> dict[str, Any]:
    response = client.post(
        "/login", json={"username": login, "password": PASSWORD}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def sign_up(client: httpx.Client, username: str = "alice") -> dict[str, Any]:
    response = client.post("/users", json={"username": username, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return response.json()


def rest_me(rest: Any, token: str) -> httpx.Response:
    return httpx.get(rest.url + "/rpc/me", headers=bearer(token), timeout=30)


def assert_refused_by_postgrest(rest: Any, token: str) -> None:
    response = rest_me(rest, token)
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_tokens_name_their_session_and_carry_a_refresh_token(
    client: httpx.Client, dsn: str
) -> None:
    body = sign_up(client)
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    assert body["refresh_token"]
    (row,) = run_sql(dsn, "select id::text, user_agent from auth.sessions")
    assert claims(body["access_token"])["sid"] == row["id"]
    assert row["user_agent"].startswith("python-httpx")
    login = client.post("/login", json={"username": "alice", "password": PASSWORD})
    assert "set-cookie" not in login.headers  # cookies only in cookie mode
    assert claims(login.json()["access_token"])["sid"] != row["id"]  # a session per sign-in


def test_wrong_credentials_get_401(client: httpx.Client) -> None:
    sign_up(client)
    for login, password in [("bob", PASSWORD), ("alice", "wrong password")]:
        response = client.post("/login", json={"username": login, "password": password})
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "invalid_credentials"


def test_refresh_pushes_the_session_and_keeps_its_id(
    client: httpx.Client, dsn: str, service: Service
) -> None:
    body = sign_up(client)
    sid = claims(body["access_token"])["sid"]
    lifetime = service.settings.sessions.lifetime
    left = "select extract(epoch from expires_at - now())::int as left from auth.sessions"
    for how in ("refresh_token", "bearer"):
        run_sql(dsn, "update auth.sessions set expires_at = now() + interval '1 minute'")
        if how == "refresh_token":
            response = client.post("/refresh_token", json={"refresh_token": body["refresh_token"]})
        else:
            response = client.post("/refresh_token", headers=bearer(body["access_token"]))
        assert response.status_code == 200, response.text
        assert claims(response.json()["access_token"])["sid"] == sid
        assert lifetime - 60 < run_sql(dsn, left)[0]["left"] <= lifetime
    assert run_sql(dsn, "select count(*) from auth.sessions")[0]["count"] == 1


def test_current_user_and_session_listing(client: httpx.Client) -> None:
    laptop = sign_up(client)
    phone = log_in(client, headers={"User-Agent": "phone"})
    assert client.get("/user").status_code == 401
    me = client.get("/user", headers=bearer(laptop["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "alice"
    assert me.json()["session_id"] == claims(laptop["access_token"])["sid"]
    sessions = client.get("/sessions", headers=bearer(phone["access_token"])).json()
    assert len(sessions) == 2
    current = [s for s in sessions if s["current"]]
    assert [s["id"] for s in current] == [claims(phone["access_token"])["sid"]]
    assert current[0]["user_agent"] == "phone" and current[0]["address"] == "127.0.0.1"


def test_deleting_another_devices_session_ends_its_tokens(client: httpx.Client, rest: Any) -> None:
    laptop = sign_up(client)
    phone = log_in(client)
    bob = sign_up(client, "bob")
    phone_sid = claims(phone["access_token"])["sid"]
    assert rest_me(rest, phone["access_token"]).json()["username"] == "alice"
    # Nobody ends someone else's session, nor one that does not exist.
    for token, sid in [
        (bob["access_token"], phone_sid),
        (laptop["access_token"], "00000000-0000-0000-0000-000000000000"),
    ]:
        response = client.delete(f"/sessions/{sid}", headers=bearer(token))
        assert response.status_code == 404, response.text
    assert client.delete(
        "/sessions/not-a-uuid", headers=bearer(laptop["access_token"])
    ).status_code in (400, 422)
    ended = client.delete(f"/sessions/{phone_sid}", headers=bearer(laptop["access_token"]))
    assert ended.status_code == 204, ended.text
    assert_refused_by_postgrest(rest, phone["access_token"])
    assert client.get("/user", headers=bearer(phone["access_token"])).status_code == 401
    refreshed = client.post("/refresh_token", json={"refresh_token": phone["refresh_token"]})
    assert refreshed.status_code == 401
    assert rest_me(rest, laptop["access_token"]).json()["username"] == "alice"


def test_logout_ends_this_session_only_and_twice_is_refused(
    client: httpx.Client, rest: Any
) -> None:
    laptop = sign_up(client)
    phone = log_in(client)
    response = client.post("/logout", headers=bearer(phone["access_token"]))
    assert response.status_code == 200, response.text
    assert_refused_by_postgrest(rest, phone["access_token"])
    again = client.post("/logout", headers=bearer(phone["access_token"]))
    assert again.status_code == 401
    assert "www-authenticate" in again.headers
    assert client.post("/refresh_token", headers=bearer(phone["access_token"])).status_code == 401
    assert rest_me(rest, laptop["access_token"]).json()["username"] == "alice"


def test_global_logout_ends_every_token_of_the_user(client: httpx.Client, rest: Any) -> None:
    laptop = sign_up(client)
    phone = log_in(client)
    bob = sign_up(client, "bob")
    response = client.post(
        "/logout", json={"scope": "global"}, headers=bearer(laptop["access_token"])
    )
    assert response.status_code == 200, response.text
    for device in (laptop, phone):
        assert_refused_by_postgrest(rest, device["access_token"])
        assert client.get("/user", headers=bearer(device["access_token"])).status_code == 401
        again = client.post("/refresh_token", json={"refresh_token": device["refresh_token"]})
        assert again.status_code == 401
    assert rest_me(rest, bob["access_token"]).json()["username"] == "bob"
    assert log_in(client)["access_token"]  # signing in again works


def test_change_password_ends_other_sessions(client: httpx.Client, rest: Any) -> None:
    laptop = sign_up(client)
    phone = log_in(client)
    response = client.post(
        "/change_password",
        json=password_change("alice", PASSWORD, "another good one"),
    )
    assert response.status_code == 200, response.text
    fresh = response.json()
    for device in (laptop, phone):
        assert_refused_by_postgrest(rest, device["access_token"])
        again = client.post("/refresh_token", json={"refresh_token": device["refresh_token"]})
        assert again.status_code == 401
    assert rest_me(rest, fresh["access_token"]).json()["username"] == "alice"
    assert client.get("/sessions", headers=bearer(fresh["access_token"])).json()[0]["current"]


def test_expired_session_ends_its_tokens(client: httpx.Client, rest: Any, dsn: str) -> None:
    body = sign_up(client)
    assert rest_me(rest, body["access_token"]).status_code == 200
    run_sql(dsn, "update auth.sessions set expires_at = now() - interval '1 second'")
    assert_refused_by_postgrest(rest, body["access_token"])
    assert client.get("/user", headers=bearer(body["access_token"])).status_code == 401
    for refresh in (
        {"json": {"refresh_token": body["refresh_token"]}},
        {"headers": bearer(body["access_token"])},
    ):
        assert client.post("/refresh_token", **refresh).status_code == 401


def test_bearer_writes_need_no_origin_check(client: httpx.Client) -> None:
    """A bearer token never rides along by itself, so a cross-origin page may use its own."""
    body = sign_up(client)
    response = client.post(
        "/logout",
        headers={
            **bearer(body["access_token"]),
            "Origin": "http://evil.example",
            "Sec-Fetch-Site": "cross-site",
        },
    )
    assert response.status_code == 200, response.text


def test_a_cookie_is_ignored_when_cookie_mode_is_off(client: httpx.Client) -> None:
    sign_up(client)
    client.cookies.set("session_token", log_in(client)["refresh_token"])
    assert client.get("/user").status_code == 401


def test_janitor_deletes_long_dead_sessions(dsn: str, smtp: Any) -> None:
    settings = make_settings(dsn, smtp.port, sessions={"cleanup_interval": 0.2})
    running = Service(settings).start()
    try:
        with running.client() as client:
            for name in ("alice", "bob", "carol"):
                sign_up(client, name)
        run_sql(
            dsn,
            "update auth.sessions set revoked_at = now() - interval '2 days'"
            " where user_id = (select id from auth.users where username = 'alice')",
        )
        run_sql(
            dsn,
            "update auth.sessions set expires_at = now() - interval '2 days'"
            " where user_id = (select id from auth.users where username = 'bob')",
        )

        def left() -> list[str]:
            return [
                r["username"]
                for r in run_sql(
                    dsn,
                    "select u.username from auth.sessions s join auth.users u on u.id = s.user_id",
                )
            ]

        wait_until(lambda: left() == ["carol"], timeout=10)
    finally:
        running.stop()
