"""The service beside the real PostgREST with a table whose policy reads the metadata claims,
in bearer or cookie mode, for tests/test_metadata.py and tests/test_delete_account.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from .support import Service, make_settings, run_script

Mode = Literal["bearer", "cookie"]
PASSWORD = "correct horse battery"

# Notes a team reads: the team comes from user_metadata (the user's), the "pro" notes need
# app_metadata.plan (the operator's). api.claims() echoes what a policy sees.
NOTES = """
create table app.notes (
  id integer generated always as identity primary key,
  team text not null,
  body text not null
);
alter table app.notes enable row level security;
create policy notes_team on app.notes for select to normal_user
  using (team = auth.jwt()->'user_metadata'->>'team'
         or (team = 'pro' and current_setting('request.jwt.claims', true)::jsonb
                                -> 'app_metadata' ->> 'plan' = 'pro'));
grant select on app.notes to normal_user;
insert into app.notes (team, body) values ('red', 'red note'), ('blue', 'blue note'),
  ('pro', 'pro note');
create view api.notes with (security_invoker = true) as select id, team, body from app.notes;
grant select on api.notes to normal_user;
create function api.claims() returns jsonb language sql stable as $$ select auth.jwt() $$;
grant execute on function api.claims() to web_anon, normal_user;
notify pgrst, 'reload schema';
"""


def unique_username() -> str:
    """Compat-mode roles are cluster-wide and outlive a test's database: fresh names."""
    return "u" + uuid.uuid4().hex[:12]


class Person:
    """One device of one user: a cookie jar, and in bearer mode the tokens a frontend keeps."""

    def __init__(self, stack: Stack, username: str, email: str | None) -> None:
        self.stack = stack
        self.username = username
        self.email = email
        self.http = httpx.Client(timeout=30)
        self.access_token: str | None = None
        self.refresh_token: str | None = None

    def auth(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(
            method, self.stack.service.base + path, headers=self._headers(kwargs), **kwargs
        )

    def rest(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(
            method, self.stack.postgrest.url + path, headers=self._headers(kwargs), **kwargs
        )

    def _headers(self, kwargs: dict[str, Any]) -> dict[str, str]:
        headers = dict(kwargs.pop("headers", None) or {})
        if self.stack.mode == "bearer" and self.access_token:
            headers.setdefault("Authorization", f"Bearer {self.access_token}")
        return headers

    def keep(self, response: httpx.Response) -> httpx.Response:
        assert response.status_code in (200, 201), response.text
        body = response.json()
        self.access_token = body["access_token"]
        self.refresh_token = body.get("refresh_token", self.refresh_token)
        return response

    def refresh(self) -> None:
        """What a client does when its token nears expiry: the refresh token, or the cookie."""
        body = {"refresh_token": self.refresh_token} if self.stack.mode == "bearer" else {}
        self.keep(self.http.post(self.stack.service.base + "/refresh_token", json=body))

    def notes(self) -> list[str]:
        response = self.rest("GET", "/notes?order=id")
        assert response.status_code == 200, response.text
        return [row["body"] for row in response.json()]

    def claims(self) -> dict[str, Any]:
        response = self.rest("POST", "/rpc/claims")
        assert response.status_code == 200, response.text
        return response.json()


@dataclass
class Stack:
    mode: Mode
    dsn: str
    service: Service
    postgrest: Any
    people: list[Person] = field(default_factory=list)

    def sign_up(self, username: str | None = None, email: str | None = None) -> Person:
        person = Person(self, username or unique_username(), email)
        body = {"username": person.username, "password": PASSWORD}
        if email:
            body["email"] = email
        response = person.http.post(self.service.base + "/users", json=body)
        assert response.status_code == 201, response.text
        person.keep(response)
        self.people.append(person)
        return person

    def close(self) -> None:
        for person in self.people:
            person.http.close()
        self.service.stop()


def stack_builder(
    dsn: str, smtp_port: int, load_todos: Callable[[], None], postgrest_factory: Any
) -> tuple[Callable[..., Stack], list[Stack]]:
    """Order matters: migrations (the service), the schemas, then PostgREST (its schema cache
    is read at start). Bearer mode: check_token_count; cookie mode: authenticate."""
    made: list[Stack] = []

    def build(mode: Mode, **overrides: Any) -> Stack:
        cookie = {"enabled": mode == "cookie", "secure": False}
        settings = make_settings(dsn, smtp_port, cookie=cookie, **overrides)
        service = Service(settings).start()
        load_todos()
        run_script(dsn, NOTES)
        pre_request = "authenticate" if mode == "cookie" else "check_token_count"
        made.append(Stack(mode, dsn, service, postgrest_factory(settings, pre_request=pre_request)))
        return made[-1]

    return build, made
