"""JSON logs: one line per request with its id, route, status, duration, user and client; the id
taken from a trusted proxy only; and nothing secret anywhere in the output of a full flow."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from .email_flows import secret_to
from .observability_support import Served
from .support import SECRET, SmtpServer, body_text, password_change

PROXY = "127.0.0.2"  # the trusted proxy: requests sent from this loopback address
JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")
ACCESS_FIELDS = {"time", "level", "request_id", "method", "route", "status", "duration_ms"}


@pytest.fixture
def served(tmp_path: Path, dsn: str, smtp: SmtpServer) -> Iterator[Served]:
    service = Served(
        tmp_path,
        {
            "secret": SECRET,
            "workers": 2,
            "log_level": "info",  # log.format unset: JSON, as in production
            "db": {"connection_string": dsn, "pool": {"min": 1, "max": 3}},
            "email": {
                "backend": "smtp",
                "host": "127.0.0.1",
                "port": smtp.port,
                "starttls": False,
                "from": "auth@example.test",
            },
            "passwords": {"bcrypt_rounds": 4},
            "cookie": {"enabled": True, "secure": False},
            "http": {"trusted_proxies": [PROXY]},
        },
    )
    try:
        service.wait_up()
        yield service
    finally:
        service.stop()


class Flow:
    """Requests of the flow, each answer kept, and every secret the flow handled."""

    def __init__(self, served: Served) -> None:
        self.http = httpx.Client(base_url=served.url + "/auth", timeout=30)
        self.answers: list[httpx.Response] = []
        self.secrets: set[str] = set()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        r = self.http.request(method, path, **kwargs)
        self.answers.append(r)
        self.keep(r)
        return r

    def keep(self, r: httpx.Response) -> None:
        """Tokens and cookie values the answer handed out."""
        try:
            body = r.json()
        except ValueError:
            body = {}
        if isinstance(body, dict):
            for key in ("access_token", "refresh_token", "token"):
                if isinstance(body.get(key), str):
                    self.secrets.add(body[key])
        for cookie in r.headers.get_list("set-cookie"):
            name_value = cookie.split(";", 1)[0]
            self.secrets.add(name_value.split("=", 1)[1])
        for part in re.findall(
            r"(?:access_token|refresh_token)=([^&#\s]+)", r.headers.get("location", "")
        ):
            self.secrets.add(part)

    def secret(self, *values: str) -> None:
        self.secrets.update(values)


def sub_of(r: httpx.Response) -> str:
    claims = jwt.decode(
        r.json()["access_token"], SECRET, algorithms=["HS256"], options={"verify_aud": False}
    )
    return claims["sub"]


def test_json_request_lines_and_no_secrets(served: Served, smtp: SmtpServer) -> None:
    flow = Flow(served)
    call = flow.call
    # The original API: sign up, sign in (cookie mode), refresh by the cookie,
    # password change, recovery with the mailed reset token.
    passwords = ["first pass 1", "second pass 2", "third pass 3", "wrong pass 0"]
    flow.secret(*passwords)
    r = call(
        "POST",
        "/users",
        json={"username": "loggy", "email": "loggy@example.test", "password": passwords[0]},
    )
    assert r.status_code == 201, r.text
    r = call("POST", "/login", json={"username": "loggy@example.test", "password": passwords[0]})
    assert r.status_code == 200, r.text
    signed_in, user_id = r, sub_of(r)
    assert flow.http.cookies.get("session_token")
    r = call("POST", "/refresh_token")  # by the session cookie (cookie mode: no refresh token)
    assert r.status_code == 200, r.text
    bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = call("GET", "/user", headers=bearer)
    assert r.status_code == 200, r.text
    authenticated = r
    r = call("POST", "/login", json={"username": "loggy", "password": passwords[3]})
    assert 400 <= r.status_code < 500, r.text
    r = call("POST", "/change_password", json=password_change("loggy", passwords[0], passwords[1]))
    assert r.status_code == 200, r.text
    r = call("POST", "/forgot_password", json={"username": "loggy"})
    assert r.status_code == 200, r.text

    def reset_mail() -> str:
        mails = smtp.mailbox.wait_for("loggy@example.test", count=3)
        [reset] = [m for m in mails if "reset" in str(m["Subject"]).lower()]
        [token] = JWT.findall(body_text(reset))
        return token

    reset_token = reset_mail()
    flow.secret(reset_token)
    r = call(
        "POST",
        "/change_password",
        json={
            "username": "loggy",
            "reset_token": reset_token,
            "new_password": passwords[2],
            "new_password_confirm": passwords[2],
        },
    )
    assert r.status_code == 200, r.text

    # The GoTrue API: sign up, sign in, refresh, password change, recovery by the mailed link
    # (its secret in the query string), a sign-in code (OTP).
    gotrue = ["gotrue pass 1", "gotrue pass 2"]
    flow.secret(*gotrue)
    email = "gotrue@example.test"
    r = call("POST", "/v1/signup", json={"email": email, "password": gotrue[0]})
    assert r.status_code == 200, r.text
    r = call("POST", "/v1/token?grant_type=password", json={"email": email, "password": gotrue[0]})
    assert r.status_code == 200, r.text
    r = call(
        "POST",
        "/v1/token?grant_type=refresh_token",
        json={"refresh_token": r.json()["refresh_token"]},
    )
    assert r.status_code == 200, r.text
    bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = call("PUT", "/v1/user", headers=bearer, json={"password": gotrue[1]})
    assert r.status_code == 200, r.text
    r = call("POST", "/v1/recover", json={"email": email})
    assert r.status_code == 200, r.text
    recovery = secret_to(smtp, email, "Recover")
    flow.secret(recovery.token_hash, recovery.code, recovery.link)
    r = call("GET", served.url + recovery.path(), follow_redirects=False)
    assert r.status_code in (200, 302, 303), r.text  # JSON, or a redirect for a browser
    r = call("POST", "/v1/otp", json={"email": email, "create_user": False})
    assert r.status_code == 200, r.text
    code = secret_to(smtp, email, "sign-in")
    flow.secret(code.token_hash, code.code)
    r = call("POST", "/v1/verify", json={"type": "email", "email": email, "token": code.code})
    assert r.status_code == 200, r.text

    # Request ids: a trusted proxy's is kept; anyone else's, or one unsafe to print, is not.
    with httpx.Client(
        base_url=served.url + "/auth", transport=httpx.HTTPTransport(local_address=PROXY)
    ) as proxy:
        kept = proxy.get("/health", headers={"X-Request-Id": "nginx-4f1c.9:a"})
        unsafe = proxy.get("/health", headers={"X-Request-Id": 'x" injected\\'})
        too_long = proxy.get("/health", headers={"X-Request-Id": "a" * 201})
    forged = flow.http.get("/health", headers={"X-Request-Id": "forged-by-a-client"})
    assert kept.headers["x-request-id"] == "nginx-4f1c.9:a"
    for r in (unsafe, too_long, forged):
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"]), r.headers
    flow.answers += [kept, unsafe, too_long, forged]
    flow.http.close()
    served.stop()
    assert served.process.returncode == 0

    log = served.output()
    entries = []
    for line in log.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries), entries[:3]
    access = {e["request_id"]: e for e in entries if e["logger"] == "postgrest_auth.access"}
    for answer in flow.answers:
        line = access[answer.headers["x-request-id"]]
        assert ACCESS_FIELDS <= set(line), line
        assert line["status"] == answer.status_code, (line, answer.request.url)
        assert line["method"] == answer.request.method
        assert line["route"] is not None and "?" not in line["route"], line
        assert line["client"] in ("127.0.0.1", PROXY), line
        assert isinstance(line["duration_ms"], float | int) and line["duration_ms"] >= 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line
    assert access[signed_in.headers["x-request-id"]]["user_id"] == user_id
    assert access[authenticated.headers["x-request-id"]]["user_id"] == user_id
    assert access[kept.headers["x-request-id"]]["client"] == PROXY
    assert access[forged.headers["x-request-id"]]["client"] == "127.0.0.1"
    assert {line["route"] for line in access.values()} >= {
        "/auth/users", "/auth/login", "/auth/v1/token", "/auth/v1/verify", "/auth/health"
    }  # fmt: skip
    # The workers and the supervisor wrote them: more than one process.
    assert (
        len({e["message"] for e in entries if e["message"].startswith("Started server process")})
        == 2
    )

    assert "forged-by-a-client" not in log and "injected" not in log
    assert len(flow.secrets) > 20
    # A six-digit code is looked for as a number of its own (not inside a longer one).
    leaked = [s for s in flow.secrets if re.search(rf"(?<!\d){re.escape(s)}(?!\d)", log)]
    assert leaked == [], leaked


def test_text_under_dev_and_json_by_default(tmp_path: Path) -> None:
    """log.format unset: text for a person under --dev, JSON otherwise; a set one is kept."""
    import logging

    from postgrest_auth.config import load_settings
    from postgrest_auth.observability.context import CURRENT, RequestContext
    from postgrest_auth.observability.logs import (
        JsonFormatter,
        TextFormatter,
        with_resolved_format,
    )

    unset = load_settings(None, {"secret": SECRET}, environ=False)
    assert with_resolved_format(unset, dev=True).log.format == "text"
    assert with_resolved_format(unset, dev=False).log.format == "json"
    chosen = load_settings(None, {"secret": SECRET, "log": {"format": "json"}}, environ=False)
    assert with_resolved_format(chosen, dev=True).log.format == "json"

    record = logging.makeLogRecord(
        {"name": "x", "levelname": "WARNING", "msg": "a %s", "args": ("b",)}
    )
    token = CURRENT.set(RequestContext("rid-1"))
    try:
        line = json.loads(JsonFormatter().format(record))
        text = TextFormatter().format(record)
    finally:
        CURRENT.reset(token)
    assert line["message"] == "a b" and line["request_id"] == "rid-1" and line["level"] == "warning"
    assert text.endswith("WARNING x: a b [rid-1]"), text


def test_a_crash_answers_500_with_its_id_and_logs_its_traceback_with_it() -> None:
    """The app's error handler answers 500 in the API's shape; the id reaches that answer and
    the traceback's JSON line, which is logged once (the server is not left to log it again,
    without the id)."""
    import asyncio
    import logging

    from postgrest_auth.app import create_app
    from postgrest_auth.observability.context import CURRENT
    from postgrest_auth.observability.logs import JsonFormatter

    from .support import make_settings

    app = create_app(make_settings("postgresql://nobody@127.0.0.1:1/none"))
    seen: list[str] = []

    async def boom() -> None:
        context = CURRENT.get()
        assert context is not None
        seen.append(context.request_id)
        raise RuntimeError("boom")

    app.add_api_route("/auth/boom", boom, methods=["GET"])

    class Lines(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.ERROR)
            self.setFormatter(JsonFormatter())
            self.lines: list[dict[str, Any]] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(json.loads(self.format(record)))

    async def call() -> httpx.Response:
        # raise_app_exceptions: an exception that escaped the app would fail the test here
        transport = httpx.ASGITransport(app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.get("/auth/boom")

    lines = Lines()
    root = logging.getLogger()
    root.addHandler(lines)
    try:
        r = asyncio.run(call())
    finally:
        root.removeHandler(lines)
    assert r.status_code == 500 and r.json()["code"] == "internal_error", r.text
    assert r.headers["x-request-id"] == seen[0]
    crashes = [line for line in lines.lines if "RuntimeError: boom" in json.dumps(line)]
    assert len(crashes) == 1 and crashes[0]["request_id"] == seen[0], lines.lines
