"""Helpers for the tests of mailed links and codes: read them from the real mail, start services
with the settings a test needs, and look at what the database kept."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt

from .support import SECRET, Service, SmtpServer, body_text, make_settings, run_sql, wait_until

PASSWORD = "correct horse"
LINK = re.compile(r"https?://\S+/verify\?\S+")
CODE = re.compile(r"^\s*(\d{6})\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Mailed:
    """The link and the code of one real mail, as its recipient reads them."""

    subject: str
    text: str
    link: str
    token_hash: str
    type: str
    code: str

    def path(self) -> str:
        """The link's path and query, to send to the service under test."""
        parts = urlsplit(self.link)
        return f"{parts.path}?{parts.query}"


def read_secret(message: EmailMessage) -> Mailed:
    text = body_text(message)
    links, codes = LINK.findall(text), CODE.findall(text)
    assert len(links) == 1 and len(codes) == 1, text  # every such mail: one link AND one code
    query = parse_qs(urlsplit(links[0]).query)
    return Mailed(
        subject=str(message["Subject"]),
        text=text,
        link=links[0],
        token_hash=query["token_hash"][0],
        type=query["type"][0],
        code=codes[0],
    )


def mail_to(smtp: SmtpServer, address: str, subject: str, count: int = 1) -> EmailMessage:
    """The `count`-th mail to `address` whose subject has `subject`, once it has arrived."""

    def found() -> list[EmailMessage]:
        return [m for m in smtp.mailbox.to(address) if subject in str(m["Subject"])]

    return wait_until(lambda: len(found()) >= count and found())[count - 1]


def secret_to(smtp: SmtpServer, address: str, subject: str, count: int = 1) -> Mailed:
    return read_secret(mail_to(smtp, address, subject, count))


def claims_of(body: dict[str, Any]) -> dict[str, Any]:
    return jwt.decode(body["access_token"], SECRET, algorithms=["HS256"], audience="authenticated")


def assert_session(r: httpx.Response) -> dict[str, Any]:
    """The original's token shape, bearer mode."""
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}, body
    assert body["token_type"] == "bearer"
    return body


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"status", "statusText", "code", "message", "errors"}, body
    assert body["code"] == code, body
    return body


def sign_up(client: httpx.Client, username: str, email: str | None) -> httpx.Response:
    data = {"username": username, "password": PASSWORD}
    if email is not None:
        data["email"] = email
    return client.post("/users", json=data)


def login(client: httpx.Client, login: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/login", json={"username": login, "password": password})


def user_row(dsn: str, email: str) -> Any:
    rows = run_sql(
        dsn,
        "select id, username, email, new_email, email_confirmed_at, password"
        " from auth.users where email = $1 or new_email = $1",
        email,
    )
    return rows[0] if rows else None


def audit_events(dsn: str) -> list[tuple[str, Any, dict[str, Any]]]:
    rows = run_sql(dsn, "select event, user_id, detail from auth.audit_log order by id")
    return [(r["event"], r["user_id"], json.loads(r["detail"])) for r in rows]


def audit_text(dsn: str) -> str:
    """Every column of every audit row, as text: what a reader of the table could see."""
    return "\n".join(r[0] for r in run_sql(dsn, "select a::text from auth.audit_log a"))


def outbox(dsn: str) -> list[tuple[str, str]]:
    rows = run_sql(dsn, "select kind, recipient from auth.outbox order by id")
    return [(r["kind"], r["recipient"]) for r in rows]


def services_on(dsn: str, smtp: SmtpServer) -> Iterator[Callable[..., Service]]:
    """For a `start_service` fixture: services with overridden settings on this test's
    database; all stopped afterwards."""
    started: list[Service] = []

    def start(**overrides: Any) -> Service:
        service = Service(make_settings(dsn, smtp.port, **overrides)).start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
