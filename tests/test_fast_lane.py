"""The fast lane (api/fast_lane.py) answers bearer refreshes and `GET /user` without FastAPI's
per-request machinery; each answer must be the documented route's. A request with a body
takes the documented route, so each case is asked both ways and the answers compared."""

from __future__ import annotations

from typing import Any

import httpx
import jwt

from postgrest_auth.api.fast_lane import fast_routes
from postgrest_auth.observability.middleware import route_template

from .support import SECRET, Service, make_settings, run_sql, sign_up

# A body the documented routes read and ignore: it sends the same request down the slow path.
SLOW = {"Content-Type": "application/json"}


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def both(client: httpx.Client, method: str, path: str, headers: dict[str, str]) -> list[Any]:
    """The fast lane's answer and the documented route's, to the same request."""
    fast = client.request(method, path, headers=headers)
    slow = client.request(method, path, headers={**headers, **SLOW}, content=b"{}")
    return [fast, slow]


def shape(response: httpx.Response) -> tuple[int, str, dict[str, Any], str | None]:
    """What must agree: status, media type, the body (tokens as their claims' keys), the
    challenge header."""
    body = response.json()
    if isinstance(body, dict) and "access_token" in body:
        claims = jwt.decode(body["access_token"], SECRET, ["HS256"], audience="authenticated")
        body = {**body, "access_token": sorted(claims)}
    return (
        response.status_code,
        response.headers["content-type"],
        body,
        response.headers.get("www-authenticate"),
    )


def test_bearer_refresh_answers_as_the_documented_route(client: httpx.Client) -> None:
    token = sign_up(client)["access_token"]
    fast, slow = both(client, "POST", "/refresh_token", bearer(token))
    assert fast.status_code == 200, fast.text
    assert shape(fast) == shape(slow)
    assert set(fast.json()) == {"access_token", "token_type", "expires_in"}  # nothing rotates


def test_current_user_answers_as_the_documented_route(client: httpx.Client) -> None:
    token = sign_up(client, email="alice@example.com")["access_token"]
    fast, slow = both(client, "GET", "/user", bearer(token))
    assert fast.status_code == 200, fast.text
    assert shape(fast) == shape(slow)
    assert fast.json()["email"] == "alice@example.com"


def test_refusals_are_the_documented_routes(client: httpx.Client, dsn: str) -> None:
    token = sign_up(client)["access_token"]
    forged = jwt.encode({"sub": "x", "exp": 2**40, "count": 0}, "another secret " * 3)
    for path, method in (("/refresh_token", "POST"), ("/user", "GET")):
        fast, slow = both(client, method, path, bearer(forged))
        assert fast.status_code == 401
        assert shape(fast) == shape(slow)
    run_sql(dsn, "update auth.sessions set revoked_at = now()")
    for path, method in (("/refresh_token", "POST"), ("/user", "GET")):
        fast, slow = both(client, method, path, bearer(token))
        assert fast.status_code == 401
        assert fast.json()["code"] == "token_revoked"
        assert shape(fast) == shape(slow)


def test_an_empty_bearer_takes_the_documented_route(client: httpx.Client) -> None:
    answer = client.post("/refresh_token", headers={"Authorization": "Bearer"})
    assert answer.status_code == 401
    assert answer.json()["code"] == "missing_credentials"


def test_cross_origin_writes_are_refused_in_cookie_mode(dsn: str) -> None:
    """The original routers' dependency holds on the fast lane too."""
    service = Service(make_settings(dsn, cookie={"enabled": True})).start()
    try:
        with service.client() as client:
            sign_up(client, "bob")
            token = client.post(
                "/login", json={"username": "bob", "password": "correct horse"}
            ).json()["access_token"]
            foreign = bearer(token, Origin="https://elsewhere.example")
            fast, slow = both(client, "POST", "/refresh_token", foreign)
            assert fast.status_code == 403
            assert shape(fast) == shape(slow)
    finally:
        service.stop()


def test_fast_answers_are_named_by_their_route_in_metrics_and_logs() -> None:
    for route in fast_routes("/auth"):
        scope = {"type": "http", "method": route.method, "path": route.path, "headers": []}
        scope["headers"] = [(b"authorization", b"Bearer x.y.z")]
        assert route.matches(scope)
        assert route_template({**scope, "route": route, "path_params": {}}) == route.path
        with_body = {**scope, "headers": [*scope["headers"], (b"content-length", b"2")]}
        assert not route.matches(with_body)


def test_cors_requests_take_the_stack_that_answers_them(dsn: str) -> None:
    origin = "https://app.example"
    service = Service(make_settings(dsn, http={"cors_origins": [origin]})).start()
    try:
        with service.client() as client:
            token = sign_up(client)["access_token"]
            answer = client.get("/user", headers=bearer(token, Origin=origin))
            assert answer.status_code == 200, answer.text
            assert answer.headers["access-control-allow-origin"] == origin
            assert client.get("/user", headers=bearer(token)).status_code == 200
    finally:
        service.stop()
