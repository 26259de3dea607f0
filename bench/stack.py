"""The parts a benchmark runs against: embedded PostgreSQL, the service and PostgREST processes."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
AUTHENTICATOR_PASSWORD = "bench-" + secrets.token_urlsafe(16)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(ready: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not become ready within {timeout} s")
        time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def postgrest_binary() -> str:
    path = os.environ.get("POSTGREST_AUTH_TEST_POSTGREST", str(ROOT / ".tools/postgrest-12.0.2-2"))
    if not os.access(path, os.X_OK):
        raise SystemExit(
            f"PostgREST is missing at {path}: run `make bench` (it fetches it), "
            "or set POSTGREST_AUTH_TEST_POSTGREST"
        )
    return path


def stop(child: subprocess.Popen[bytes], within: float) -> None:
    """SIGTERM, then SIGKILL if it is still running `within` seconds later."""
    child.terminate()
    try:
        child.wait(timeout=within)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


@contextmanager
def process(args: list[str], env: dict[str, str], url: str, what: str) -> Iterator[None]:
    """A child process serving `url`; its output is kept in a file and shown only if it dies."""
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:

            def ready() -> bool:
                if child.poll() is not None:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-2000:]
                    raise RuntimeError(f"{what} exited:\n{tail}")
                return answers(url)

            wait_until(ready, what, timeout=120)  # a loaded machine starts slowly
            yield
        finally:
            stop(child, within=10)


def run_sql(dsn: str, sql: str, *args: Any) -> Any:
    import asyncio

    async def go() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(sql, *args) if args else await conn.execute(sql)
        finally:
            await conn.close()

    return asyncio.run(go())


@dataclass
class Stack:
    """One database, the service, and PostgREST with and without the pre-request."""

    dsn: str
    auth_url: str
    rest_checked: str  # db-pre-request = auth.check_token_count
    rest_plain: str  # no pre-request
    rest_empty: str  # db-pre-request = an empty function: what PostgREST's extra call costs
    bcrypt_rounds: int
    secret: str = ""  # the service's HS256 secret: the floor signs and verifies with it
    rest_cookie: str = ""  # db-pre-request = auth.authenticate: the session-cookie mode


EMPTY_PRE_REQUEST = """
create schema if not exists bench;
grant usage on schema bench to public;
create or replace function bench.empty_pre_request() returns void
  language plpgsql stable as 'begin end';
grant execute on function bench.empty_pre_request() to public;
"""


@contextmanager
def database() -> Iterator[str]:
    try:
        import pgserver
    except ImportError:
        raise SystemExit("pgserver is missing: run `make bench`") from None
    directory = Path(tempfile.mkdtemp(prefix="pa-bench-", dir="/tmp"))
    server = pgserver.get_server(directory, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def service_config(dsn: str, port: int, bcrypt_rounds: int) -> dict[str, Any]:
    return {
        "secret": secrets.token_urlsafe(36),
        "host": "127.0.0.1",
        "port": port,
        "log_level": "warning",
        "db": {"connection_string": dsn},
        "email": {"backend": "console"},
        "passwords": {"bcrypt_rounds": bcrypt_rounds},
        "rate_limit": {"enabled": False},
        "workers": os.cpu_count() or 1,  # as a production deployment would run it
    }


def postgrest_env(dsn: str, secret: str, port: int, pre_request: str | None) -> dict[str, str]:
    parts = urlsplit(dsn)
    netloc = f"authenticator:{AUTHENTICATOR_PASSWORD}@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGRST_")}
    env.update(
        PGRST_DB_URI=urlunsplit(parts._replace(netloc=netloc)),
        PGRST_DB_SCHEMAS="api",
        PGRST_DB_ANON_ROLE="web_anon",
        PGRST_JWT_SECRET=secret,
        PGRST_SERVER_HOST="127.0.0.1",
        PGRST_SERVER_PORT=str(port),
        PGRST_DB_POOL="8",
        PGRST_LOG_LEVEL="crit",
        PGRST_DB_CHANNEL_ENABLED="false",
    )
    if pre_request:
        env["PGRST_DB_PRE_REQUEST"] = pre_request
    return env


@contextmanager
def running_stack(bcrypt_rounds: int = 10) -> Iterator[Stack]:
    """Everything started from scratch on loopback, stopped and deleted on exit."""
    with ExitStack() as stack:
        dsn = stack.enter_context(database())
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pa-bench-")))
        auth_port = free_port()
        config = service_config(dsn, auth_port, bcrypt_rounds)
        config_file = workdir / "postgrest-auth.json"
        config_file.write_text(json.dumps(config))
        auth_url = f"http://127.0.0.1:{auth_port}/auth"
        stack.enter_context(
            process(
                [sys.executable, "-m", "postgrest_auth", "--config", str(config_file)],
                {**os.environ, "PYTHONPATH": str(ROOT)},
                auth_url + "/health",
                "the service",
            )
        )  # it applies the migrations as it starts
        run_sql(dsn, f"alter role authenticator login password '{AUTHENTICATOR_PASSWORD}'")
        run_sql(dsn, (ROOT / "examples" / "todos.sql").read_text())
        run_sql(dsn, EMPTY_PRE_REQUEST)
        urls = []
        pre_requests = (
            "auth.check_token_count",
            None,
            "bench.empty_pre_request",
            "auth.authenticate",
        )
        for pre_request in pre_requests:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            env = postgrest_env(dsn, config["secret"], port, pre_request)
            stack.enter_context(process([postgrest_binary()], env, url + "/", "PostgREST"))
            urls.append(url)
        yield Stack(
            dsn, auth_url, urls[0], urls[1], urls[2], bcrypt_rounds, config["secret"], urls[3]
        )
