"""Cookie mode against the real PostgREST with `db-pre-request = "auth.authenticate"`.

Ports the postgrest-sessions-example's integration tests (its tests.py) to this service plus
examples/todos.sql, and adds what the example left out: ended sessions, other devices, CSRF.
A "browser" is one httpx.Client: one cookie jar sent to both servers (both on 127.0.0.1, and
cookies ignore ports), as a browser does when a proxy serves them on one origin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest

from .support import Service, make_settings, password_change, run_sql

Mode = Literal["bearer", "cookie"]
PASSWORD = "correct horse battery"
COOKIE = "session_token"


@dataclass
class Stack:
    """The service and PostgREST over one database, configured for one mode."""

    mode: Mode
    dsn: str
    service: Service
    postgrest: Any
    browsers: list[Browser] = field(default_factory=list)

    def browser(self, mode: Mode | None = None) -> Browser:
        made = Browser(self, mode or self.mode)
        self.browsers.append(made)
        return made


class Browser:
    """One device: a cookie jar, and in bearer mode the access token a frontend would keep."""

    def __init__(self, stack: Stack, mode: Mode) -> None:
        self.stack = stack
        self.mode = mode
        self.http = httpx.Client(timeout=30)
        self.access_token: str | None = None

    def auth(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call to the auth service; in bearer mode with the token, as a frontend sends it."""
        return self.http.request(
            method, self.stack.service.base + path, headers=self._headers(kwargs), **kwargs
        )

    def rest(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call to PostgREST: the cookie rides along in cookie mode, the token in bearer mode."""
        return self.http.request(
            method, self.stack.postgrest.url + path, headers=self._headers(kwargs), **kwargs
        )

    def _headers(self, kwargs: dict[str, Any]) -> dict[str, str]:
        headers = dict(kwargs.pop("headers", None) or {})
        if self.mode == "bearer" and self.access_token:
            headers.setdefault("Authorization", f"Bearer {self.access_token}")
        return headers

    def _keep(self, response: httpx.Response) -> httpx.Response:
        if response.status_code in (200, 201):
            self.access_token = response.json()["access_token"]
        return response

    def sign_up(self, username: str, email: str | None = None) -> httpx.Response:
        body = {"username": username, "password": PASSWORD}
        if email:
            body["email"] = email
        return self._keep(self.auth("POST", "/users", json=body))

    def log_in(self, login: str, password: str = PASSWORD) -> httpx.Response:
        body = {"username": login, "password": password}
        return self._keep(self.auth("POST", "/login", json=body))

    def me(self) -> dict[str, Any]:
        response = self.rest("GET", "/rpc/me")
        assert response.status_code == 200, response.text
        return response.json()

    def cookie(self) -> str | None:
        return self.http.cookies.get(COOKIE)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def stack_factory(dsn, smtp, load_todos, postgrest_factory) -> Iterator[Callable[[Mode], Stack]]:  # type: ignore[no-untyped-def]
    """Bearer mode: the default service and `check_token_count`. Cookie mode: the cookie service
    and `authenticate`. Order matters: migrations, then the example schema, then PostgREST (its
    schema cache is read at start)."""
    made: list[Stack] = []

    def make(mode: Mode) -> Stack:
        cookie = {"enabled": mode == "cookie", "secure": False}
        service = Service(make_settings(dsn, smtp.port, cookie=cookie)).start()
        load_todos()
        pre_request = "authenticate" if mode == "cookie" else "check_token_count"
        postgrest = postgrest_factory(service.settings, pre_request=pre_request)
        made.append(Stack(mode, dsn, service, postgrest))
        return made[-1]

    yield make
    for stack in made:
        for browser in stack.browsers:
            browser.close()
        stack.service.stop()


@pytest.fixture
def stack(stack_factory: Callable[[Mode], Stack]) -> Stack:
    return stack_factory("cookie")


def session_row(dsn: str, user: str) -> list[Any]:
    return run_sql(
        dsn,
        "select s.id::text, s.expires_at, s.revoked_at from auth.sessions s"
        " join auth.users u on u.id = s.user_id where u.username = $1 order by s.created_at",
        user,
    )


def new_todo(
    browser: Browser, description: str, headers: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    return browser.rest(
        "POST",
        "/todos",
        json={"description": description, **extra},
        headers={"Prefer": "return=representation", **(headers or {})},
    )


# -- the sessions example's tests.py, ported ----------------------------------------------------


def test_register_as_anonymous_sets_session_cookie(stack: Stack) -> None:
    alice = stack.browser()
    response = alice.sign_up("alice", "alice@example.com")
    assert response.status_code == 201, response.text
    assert "refresh_token" not in response.json()  # in cookie mode the token stays out of scripts
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}=")
    lowered = set_cookie.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered and "path=/" in lowered
    assert alice.cookie()
    # The jar sends the cookie the service set to PostgREST on another port of the same host.
    assert alice.me()["username"] == "alice"


def test_login_sets_cookie_and_wrong_credentials_get_401(stack: Stack) -> None:
    stack.browser().sign_up("alice", "alice@example.com")
    alice = stack.browser()
    by_email = alice.log_in("alice@example.com")
    assert by_email.status_code == 200, by_email.text
    assert alice.cookie()
    for login, password in [("wrong_alice@example.com", PASSWORD), ("alice@example.com", "wrong")]:
        stranger = stack.browser()
        response = stranger.log_in(login, password)
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "invalid_credentials"
        assert stranger.cookie() is None


def test_current_user_needs_the_cookie(stack: Stack) -> None:
    alice = stack.browser()
    alice.sign_up("alice")
    user_id = alice.auth("GET", "/user").json()["id"]
    anonymous = stack.browser()
    assert anonymous.auth("GET", "/user").status_code == 401
    assert anonymous.me() == {"id": None, "username": None}
    response = alice.auth("GET", "/user")
    assert response.status_code == 200, response.text
    assert response.json()["username"] == "alice"
    assert alice.me() == {"id": user_id, "username": "alice"}


def test_logout_changes_permissions_and_a_second_logout_is_refused(stack: Stack) -> None:
    alice = stack.browser()
    alice.sign_up("alice")
    assert new_todo(alice, "before").status_code == 201
    stale_cookie = alice.cookie()
    response = alice.auth("POST", "/logout")
    assert response.status_code == 200, response.text
    assert alice.cookie() is None  # the service cleared it
    assert alice.me()["id"] is None
    assert new_todo(alice, "after").status_code == 401
    assert alice.auth("POST", "/logout").status_code == 401
    # A copy of the old cookie is worth nothing either.
    replay = stack.browser()
    replay.http.cookies.set(COOKIE, stale_cookie)
    assert replay.me()["id"] is None
    assert new_todo(replay, "replayed").status_code == 401
    assert replay.auth("POST", "/logout").status_code == 401


def test_refresh_sets_new_cookie_lifetime(stack: Stack) -> None:
    alice = stack.browser()
    alice.sign_up("alice")
    run_sql(stack.dsn, "update auth.sessions set expires_at = now() + interval '1 hour'")
    response = alice.auth("POST", "/refresh_token")
    assert response.status_code == 200, response.text
    lifetime = stack.service.settings.sessions.lifetime
    set_cookie = response.headers["set-cookie"].lower()
    assert f"max-age={lifetime}" in set_cookie
    (row,) = run_sql(
        stack.dsn, "select extract(epoch from expires_at - now())::int as left from auth.sessions"
    )
    assert lifetime - 60 < row["left"] <= lifetime  # pushed from 1 hour to the full lifetime
    assert alice.me()["username"] == "alice"


def test_user_listing_needs_a_session(stack: Stack) -> None:
    alice = stack.browser()
    alice.sign_up("alice")
    stack.browser().sign_up("bob")
    response = alice.rest("GET", "/users?order=username")
    assert response.status_code == 200, response.text
    assert [u["username"] for u in response.json()] == ["alice", "bob"]
    assert alice.me()["id"] in [u["id"] for u in response.json()]
    assert stack.browser().rest("GET", "/users").status_code == 401


def test_anonymous_cannot_create_todos(stack: Stack) -> None:
    response = new_todo(stack.browser(), "spam")
    assert response.status_code == 401, response.text
    assert run_sql(stack.dsn, "select count(*) from app.todos")[0]["count"] == 0


# -- both modes, one scenario -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bearer", "cookie"])
def test_row_level_security_is_the_same_in_both_modes(
    stack_factory: Callable[[Mode], Stack], mode: Mode
) -> None:
    """A user's to-dos are invisible to others until made public; nobody changes another's."""
    stack = stack_factory(mode)
    alice, bob, anonymous = stack.browser(), stack.browser(), stack.browser()
    assert alice.sign_up("alice").status_code == 201
    assert bob.sign_up("bob").status_code == 201
    if mode == "bearer":
        assert alice.cookie() is None and alice.access_token
    else:
        assert alice.cookie()
    created = new_todo(alice, "buy milk")
    assert created.status_code == 201, created.text
    todo = created.json()[0]
    assert todo["user_id"] == alice.me()["id"]
    # user_id comes from the claims; claiming another's id is refused by the policy.
    forged = new_todo(bob, "in alice's name", user_id=todo["user_id"])
    assert forged.status_code in (401, 403), forged.text

    assert [t["description"] for t in alice.rest("GET", "/todos").json()] == ["buy milk"]
    assert bob.rest("GET", "/todos").json() == []
    assert anonymous.rest("GET", "/todos").json() == []

    hijack = bob.rest(
        "PATCH",
        f"/todos?id=eq.{todo['id']}",
        json={"public": True},
        headers={"Prefer": "return=representation"},
    )
    assert hijack.status_code == 200 and hijack.json() == []  # no row of his matched

    shared = alice.rest(
        "PATCH",
        f"/todos?id=eq.{todo['id']}",
        json={"public": True},
        headers={"Prefer": "return=representation"},
    )
    assert shared.status_code == 200 and shared.json()[0]["public"] is True, shared.text
    assert [t["id"] for t in bob.rest("GET", "/todos").json()] == [todo["id"]]
    assert [t["id"] for t in anonymous.rest("GET", "/todos").json()] == [todo["id"]]
    # Public means readable, not writable.
    assert bob.rest("DELETE", f"/todos?id=eq.{todo['id']}").status_code == 204
    assert anonymous.rest("DELETE", f"/todos?id=eq.{todo['id']}").status_code == 401
    assert [t["id"] for t in alice.rest("GET", "/todos").json()] == [todo["id"]]
    assert new_todo(anonymous, "spam").status_code == 401


# -- sessions ending, in cookie mode ------------------------------------------------------------


def test_deleting_another_devices_session_ends_its_cookie(stack: Stack) -> None:
    laptop, phone = stack.browser(), stack.browser()
    laptop.sign_up("alice")
    assert phone.log_in("alice").status_code == 200
    sessions = laptop.auth("GET", "/sessions").json()
    assert len(sessions) == 2
    other = next(s for s in sessions if not s["current"])
    assert other["id"] == phone.auth("GET", "/user").json()["session_id"]
    assert laptop.auth("DELETE", f"/sessions/{other['id']}").status_code == 204
    assert phone.me()["id"] is None
    assert new_todo(phone, "from the phone").status_code == 401
    assert phone.auth("GET", "/user").status_code == 401
    assert laptop.me()["username"] == "alice"
    assert laptop.auth("DELETE", f"/sessions/{other['id']}").status_code == 404


def test_global_logout_ends_every_cookie_and_token(stack: Stack) -> None:
    laptop, phone = stack.browser(), stack.browser()
    laptop.sign_up("alice")
    phone.log_in("alice")
    bob = stack.browser()
    bob.sign_up("bob")
    # The access token from the body works as a bearer token through the same pre-request.
    script = stack.browser(mode="bearer")
    script.access_token = laptop.access_token
    assert script.me()["username"] == "alice"

    response = laptop.auth("POST", "/logout", json={"scope": "global"})
    assert response.status_code == 200, response.text
    assert laptop.me()["id"] is None and phone.me()["id"] is None
    assert phone.auth("GET", "/user").status_code == 401
    assert script.rest("GET", "/rpc/me").status_code == 401
    assert bob.me()["username"] == "bob"  # other users keep their sessions


def test_change_password_ends_other_sessions(stack: Stack) -> None:
    laptop, phone = stack.browser(), stack.browser()
    laptop.sign_up("alice")
    phone.log_in("alice")
    response = laptop.auth(
        "POST",
        "/change_password",
        json=password_change("alice", PASSWORD, "another good one"),
    )
    assert response.status_code == 200, response.text
    assert phone.me()["id"] is None
    assert phone.auth("GET", "/user").status_code == 401
    assert laptop.me()["username"] == "alice"  # the changing device got a fresh cookie
    assert new_todo(laptop, "still here").status_code == 201


def test_expired_session_is_anonymous_at_postgrest_and_401_at_the_service(stack: Stack) -> None:
    alice = stack.browser()
    alice.sign_up("alice")
    run_sql(stack.dsn, "update auth.sessions set expires_at = now() - interval '1 second'")
    assert alice.me()["id"] is None
    assert new_todo(alice, "too late").status_code == 401
    assert alice.auth("GET", "/user").status_code == 401
    assert alice.auth("POST", "/refresh_token").status_code == 401


# -- CSRF ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://sub.127.0.0.1"},
    ],
    ids=["origin", "sec-fetch-site", "sibling-site"],
)
def test_cross_origin_cookie_writes_are_refused(stack: Stack, headers: dict[str, str]) -> None:
    alice = stack.browser()
    alice.sign_up("alice")
    refused = new_todo(alice, "forged", headers=headers)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "cross_origin"
    # A classic HTML form post sends form-encoded bodies: refused the same way.
    form = alice.rest("POST", "/todos", data={"description": "forged form"}, headers=headers)
    assert form.status_code == 403, form.text
    assert run_sql(stack.dsn, "select count(*) from app.todos")[0]["count"] == 0
    logout = alice.auth("POST", "/logout", headers=headers)
    assert logout.status_code == 403, logout.text
    # Reads stay open, and the session survived the forged logout.
    assert alice.rest("GET", "/rpc/me", headers=headers).json()["username"] == "alice"
    assert alice.auth("GET", "/user").status_code == 200
    # The same writes from the page's own origin go through.
    own = {"Origin": stack.postgrest.url, "Sec-Fetch-Site": "same-origin"}
    assert new_todo(alice, "mine", headers=own).status_code == 201
    assert alice.auth("POST", "/logout", headers={"Origin": stack.service.url}).status_code == 200
