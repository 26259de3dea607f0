"""Start-up as operators meet it: a database that is not up yet, one that is behind or was
migrated by another version, many instances migrating at once, and settings that name files
that are missing or wrong. Every refusal is one line on stderr naming the setting and the fix.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from postgrest_auth.app import create_app
from postgrest_auth.migrate import (
    load_migrations,
    migrate,
    migration_status,
    migrations_current,
    rendered_sql,
)
from postgrest_auth.reach import DatabaseUnreachable

from .support import SECRET, free_port, make_settings, migrated, run_script, run_sql, wait_until

ROOT = Path(__file__).parent.parent


# -- helpers -----------------------------------------------------------------------------------


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTGREST_AUTH_")}
    env.pop("PORT", None)
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_cli(*args: str, timeout: float = 90) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "postgrest_auth", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    return result, time.monotonic() - began


def write_config(tmp_path: Path, **values: Any) -> Path:
    data: dict[str, Any] = {
        "secret": SECRET,
        "passwords": {"bcrypt_rounds": 4},
        "email": {"backend": "console"},
    }
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = tmp_path / "postgrest-auth.json"
    path.write_text(json.dumps(data))
    return path


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a refused start, after checking it is one and not a traceback."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("postgrest-auth: "), lines[0]
    return lines[0]


def tcp_dsn(dsn: str, port: int) -> str:
    """The same database and user, reached over TCP at 127.0.0.1:port."""
    parts = urlsplit(dsn)
    return f"postgresql://{parts.username}@127.0.0.1:{port}{parts.path}"


class LateProxy:
    """Refuses connections (nothing listens) until `delay` has passed, then forwards TCP to the
    test PostgreSQL: a database that comes up while the service waits for it."""

    def __init__(self, dsn: str, delay: float, *, once: bool = False) -> None:
        parts = urlsplit(dsn)
        host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
        port = parts.port or 5432
        self.target: tuple[int, Any] = (
            (socket.AF_UNIX, f"{host}/.s.PGSQL.{port}")
            if host.startswith("/")
            else (socket.AF_INET, (host, port))
        )
        self.port = free_port()
        self.delay = delay
        self.once = once  # forward the first connection only, then refuse again
        self.listening_at: float | None = None
        self.closed = False
        self.listener: socket.socket | None = None
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        time.sleep(self.delay)
        listener = socket.create_server(("127.0.0.1", self.port))
        self.listener, self.listening_at = listener, time.monotonic()
        while not self.closed:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(self.target[0], socket.SOCK_STREAM)
            upstream.connect(self.target[1])
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()
            if self.once:
                listener.close()
                return

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.closed = True
        if self.listener is not None:
            self.listener.close()


@pytest.fixture
def serving() -> Iterator[Any]:
    """Start `postgrest-auth` serving in a subprocess; SIGTERM and reap it afterwards."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "postgrest_auth", *args],
            env=cli_env(),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def health(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/auth/health", timeout=1).is_success
    except httpx.HTTPError:
        return False


# -- a database that is not there ----------------------------------------------------------------


@pytest.mark.parametrize(
    "how",
    [
        ["migrate"],
        [],  # serve, migrating first (db.auto_migrate: true)
        ["--workers", "2", "auto_migrate=false"],
    ],
    ids=["migrate", "serve", "serve-2-workers-no-auto-migrate"],
)
def test_an_unreachable_database_is_waited_for_then_refused_in_one_line(tmp_path, how):
    port = free_port()  # nothing listens there
    db: dict[str, Any] = {
        "connection_string": f"postgresql://someone:hunter2-secret@127.0.0.1:{port}/app",
        "connect_timeout": 2,
    }
    args = [a for a in how if a != "auto_migrate=false"]
    if "auto_migrate=false" in how:
        db["auto_migrate"] = False
    path = write_config(tmp_path, db=db, port=free_port())
    result, took = run_cli(*args, "--config", str(path))
    line = refusal(result)
    assert f"127.0.0.1:{port}" in line and "db.connection_string" in line, line
    assert "hunter2" not in result.stderr + result.stdout
    assert took >= 2, took  # it waited db.connect_timeout
    assert took < 2 + 25, took  # and then gave up (margin for a loaded machine)


def test_wrong_credentials_are_refused_at_once(tmp_path, dsn):
    parts = urlsplit(dsn)
    query = f"?{parts.query}" if parts.query else ""
    wrong = f"postgresql://{parts.username}@{parts.netloc.rpartition('@')[2]}/no_such_db{query}"
    path = write_config(tmp_path, db={"connection_string": wrong, "connect_timeout": 20})
    result, took = run_cli("migrate", "--config", str(path))
    line = refusal(result)
    assert "no such database" in line and "db.connection_string" in line, line
    assert took < 15, took  # not retried: waiting would not help


def test_a_database_that_comes_up_while_waiting_is_used(tmp_path, dsn, serving):
    proxy = LateProxy(dsn, delay=1.5)
    port = free_port()
    path = write_config(
        tmp_path,
        db={"connection_string": tcp_dsn(dsn, proxy.port), "connect_timeout": 30},
        port=port,
    )
    began = time.monotonic()
    process = serving("--config", str(path))
    try:

        def up() -> bool:
            assert process.poll() is None, process.communicate()
            return health(port)

        wait_until(up, timeout=60, interval=0.1)
        assert proxy.listening_at is not None and proxy.listening_at - began >= 1.4
        r = httpx.post(
            f"http://127.0.0.1:{port}/auth/users",
            json={"username": "latecomer", "password": "correct horse"},
        )
        assert r.status_code == 201, r.text
        assert run_sql(dsn, "select username from auth.users") == [("latecomer",)]
    finally:
        proxy.close()


def test_the_pool_waits_too_and_gives_up_with_one_line(dsn):
    """A worker opens its own pool: the same patience, the same one-line refusal."""

    async def lifespan(settings: Any) -> float:
        app = create_app(settings)
        began = time.monotonic()
        async with app.router.lifespan_context(app):
            return time.monotonic() - began

    closed = make_settings(
        f"postgresql://x:pw@127.0.0.1:{free_port()}/x", db={"connect_timeout": 1.5}
    )
    began = time.monotonic()
    with pytest.raises(DatabaseUnreachable) as refused:
        asyncio.run(lifespan(closed))
    assert time.monotonic() - began >= 1.5
    message = str(refused.value)
    assert "\n" not in message and "127.0.0.1:" in message and ":pw@" not in message

    proxy = LateProxy(dsn, delay=1.0)
    try:
        late = make_settings(tcp_dsn(dsn, proxy.port), db={"connect_timeout": 30})
        assert asyncio.run(lifespan(late)) >= 0.9  # opened once PostgreSQL answered
        assert migrations_current_at(dsn, late)
    finally:
        proxy.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_worker_that_cannot_open_its_pool_stops_in_one_line_without_a_traceback(
    tmp_path, dsn, workers
):
    """The database answered the start-up check, then went away before the worker's pool.
    With several workers the supervisor stops too, and its exit status says it failed."""
    run_script(dsn, rendered_sql(make_settings(dsn)))
    proxy = LateProxy(dsn, delay=0, once=True)
    wait_until(lambda: proxy.listening_at is not None)
    path = write_config(
        tmp_path,
        db={
            "connection_string": tcp_dsn(dsn, proxy.port),
            "auto_migrate": False,
            "connect_timeout": 2,
        },
        port=free_port(),
        workers=workers,
    )
    result, took = run_cli("--config", str(path))
    assert result.returncode == 3, result  # uvicorn's start-up failure
    assert "Traceback" not in result.stderr, result.stderr
    refusals = [line for line in result.stderr.splitlines() if "cannot reach PostgreSQL" in line]
    assert refusals and f"127.0.0.1:{proxy.port}" in refusals[0], result.stderr
    # one refusal, said once by each worker that tried (lines differ only in their time)
    assert len({line[line.index("db.connection_string:") :] for line in refusals}) == 1
    assert took >= 2


def migrations_current_at(dsn: str, settings: Any) -> bool:
    async def go() -> bool:
        conn = await asyncpg.connect(dsn)
        try:
            return await migrations_current(conn, settings)
        finally:
            await conn.close()

    return asyncio.run(go())


# -- db.auto_migrate: false ----------------------------------------------------------------------


def test_serving_refuses_a_database_that_is_behind_or_changed(tmp_path, dsn):
    path = write_config(tmp_path, db={"connection_string": dsn, "auto_migrate": False})
    settings = make_settings(dsn)
    names = [m.name for m in load_migrations(settings)]

    # nothing applied yet
    line = refusal(run_cli("--config", str(path))[0])
    assert "db.auto_migrate" in line and "`postgrest-auth migrate`" in line, line
    assert "`postgrest-auth sql`" in line and names[0] in line
    assert not migrations_current_at(dsn, settings)

    # one shipped file missing
    migrated(dsn, settings)
    assert migrations_current_at(dsn, settings)
    last_versioned = [n for n in names if not n.startswith("R_")][-1]
    run_sql(dsn, "delete from auth.schema_migrations where name = $1", last_versioned)
    line = refusal(run_cli("--config", str(path))[0])
    assert f"({last_versioned} not applied)" in line and "postgrest-auth migrate" in line, line
    assert not migrations_current_at(dsn, settings)

    # an applied file changed
    migrated(dsn, settings)
    run_sql(dsn, "update auth.schema_migrations set checksum = 'x' where name = $1", names[0])
    line = refusal(run_cli("--config", str(path))[0])
    assert f"{names[0]} was changed after it was applied" in line, line
    assert not migrations_current_at(dsn, settings)


def stopped(process: subprocess.Popen[str]) -> str:
    """SIGTERM a serving process; its stderr."""
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=30)[1]


def ready(port: int) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/auth/ready", timeout=5)


def test_a_setting_that_renders_a_repeatable_file_anew_starts_with_a_warning(
    tmp_path, dsn, serving
):
    """A renamed cookie renders R_pre_request.sql anew: with db.auto_migrate false that is a
    warning at start (the same drift a rolling upgrade causes), and `migrate` applies it."""
    migrated(dsn, make_settings(dsn))
    port = free_port()
    renamed = {"name": "other_cookie", "secure": False}
    path = write_config(
        tmp_path, db={"connection_string": dsn, "auto_migrate": False}, cookie=renamed, port=port
    )
    process = serving("--config", str(path))

    def up() -> bool:
        assert process.poll() is None, process.communicate()
        return health(port)

    wait_until(up, timeout=60, interval=0.1)
    assert ready(port).status_code == 200, ready(port).text
    warnings = [line for line in stopped(process).splitlines() if "R_pre_request.sql" in line]
    assert len(warnings) == 1 and "postgrest-auth migrate" in warnings[0], warnings
    assert "rolling upgrade" in warnings[0], warnings
    result, _ = run_cli("migrate", "--config", str(path))
    assert result.returncode == 0 and "R_pre_request.sql" in result.stdout, result.stderr


def test_a_database_migrated_by_a_newer_release_keeps_this_instance_ready(tmp_path, dsn, serving):
    """A rolling upgrade: release N+1 edited a repeatable file and added a versioned one. The
    release-N instances keep answering ready, and one restarted meanwhile starts."""
    settings = make_settings(dsn)
    migrated(dsn, settings)
    ports = [free_port(), free_port()]
    paths = []
    for n, port in enumerate(ports):
        directory = tmp_path / str(n)
        directory.mkdir()
        paths.append(
            write_config(directory, db={"connection_string": dsn, "auto_migrate": False}, port=port)
        )
    first = serving("--config", str(paths[0]))
    wait_until(lambda: health(ports[0]), timeout=60, interval=0.1)
    assert ready(ports[0]).status_code == 200

    run_sql(dsn, "update auth.schema_migrations set checksum = 'n+1' where name like 'R\\_%'")
    run_sql(dsn, "insert into auth.schema_migrations (name, checksum) values ('999_next.sql', 'n')")
    assert migrations_current_at(dsn, settings)
    answer = ready(ports[0])
    assert answer.status_code == 200 and answer.json()["migrations"] == "current", answer.text

    second = serving("--config", str(paths[1]))

    def up() -> bool:
        assert second.poll() is None, second.communicate()
        return health(ports[1])

    wait_until(up, timeout=60, interval=0.1)
    assert ready(ports[1]).status_code == 200
    assert first.poll() is None
    # An older instance migrating (auto_migrate, restarted mid-upgrade) leaves the newer
    # release's repeatable files alone.
    assert migrated(dsn, settings) == []
    rows = run_sql(dsn, "select checksum from auth.schema_migrations where name like 'R\\_%'")
    assert {r[0] for r in rows} == {"n+1"}


def test_a_wrong_direct_connection_string_is_refused_at_start_without_auto_migrate(tmp_path, dsn):
    """Not found only when the mail worker first needs it: refused in one line at start."""
    migrated(dsn, make_settings(dsn))
    parts = urlsplit(dsn)
    query = f"?{parts.query}" if parts.query else ""
    wrong = f"postgresql://{parts.username}@{parts.netloc.rpartition('@')[2]}/no_such_db{query}"
    db = {"connection_string": dsn, "auto_migrate": False, "direct_connection_string": wrong}
    path = write_config(tmp_path, db=db, port=free_port())
    line = refusal(run_cli("--config", str(path), timeout=30)[0])  # not served unchecked
    assert "db.direct_connection_string" in line and "no such database" in line, line


def test_the_sql_of_postgrest_auth_sql_counts_as_migrated(tmp_path, dsn, serving):
    """Operators with their own migration tool apply `postgrest-auth sql`; the server then
    starts with db.auto_migrate: false, and `migrate` finds nothing to do."""
    port = free_port()
    path = write_config(tmp_path, db={"connection_string": dsn, "auto_migrate": False}, port=port)
    settings = make_settings(dsn)
    run_script(dsn, rendered_sql(settings))
    run_script(dsn, rendered_sql(settings))  # applying it twice is harmless
    assert migrations_current_at(dsn, settings)
    result, _ = run_cli("migrate", "--config", str(path))
    assert result.stdout.strip() == "nothing to apply", result.stderr
    process = serving("--config", str(path))

    def up() -> bool:
        assert process.poll() is None, process.communicate()
        return health(port)

    wait_until(up, timeout=60, interval=0.1)


def test_a_newer_versions_file_does_not_make_this_one_behind(dsn):
    """A rolling upgrade: a newer instance applied a file this version does not ship."""
    settings = make_settings(dsn)
    migrated(dsn, settings)
    run_sql(dsn, "insert into auth.schema_migrations (name, checksum) values ('999_next.sql', 'n')")
    assert migrations_current_at(dsn, settings)


# -- many instances migrating at once ------------------------------------------------------------


@pytest.mark.parametrize("direct", [False, True], ids=["transaction-lock", "session-lock"])
def test_four_instances_migrating_a_fresh_database_apply_each_file_once(dsn, direct):
    db = {"direct_connection_string": dsn if direct else None}
    settings = make_settings(dsn, db=db)
    names = [m.name for m in load_migrations(settings)]

    async def go() -> tuple[list[list[str]], list[Any]]:
        conns = [await asyncpg.connect(dsn) for _ in range(4)]
        try:
            applied = await asyncio.gather(*(migrate(c, settings) for c in conns))
            # no lock outlives a migration, whichever kind it took
            locks = await conns[0].fetch("select * from pg_locks where locktype = 'advisory'")
            return list(applied), locks
        finally:
            for conn in conns:
                await conn.close()

    applied, locks = asyncio.run(go())
    flat = [name for each in applied for name in each]
    assert sorted(flat) == sorted(names)  # each file applied by exactly one instance
    assert sum(1 for each in applied if each) == 1  # the first one did it all
    assert sorted(r[0] for r in run_sql(dsn, "select name from auth.schema_migrations")) == sorted(
        names
    )
    assert locks == []


def test_four_instances_migrating_through_pgbouncer_apply_each_file_once(admin_dsn, dsn):
    """Transaction pooling with 2 server connections under 4 clients: the transaction-level lock
    (a session lock could be released on another server connection) keeps one migrator."""
    from .pgbouncer_support import PgBouncer

    password = "bouncer-client-password"
    bouncer = PgBouncer(admin_dsn, {"postgres": password}, pool_size=2).start()
    try:
        through = bouncer.dsn(urlsplit(dsn).path.lstrip("/"), "postgres", password)
        settings = make_settings(
            through, db={"statement_cache": False, "direct_connection_string": None}
        )
        names = [m.name for m in load_migrations(settings)]

        async def go() -> list[list[str]]:
            conns = [await asyncpg.connect(through, statement_cache_size=0) for _ in range(4)]
            try:
                return list(await asyncio.gather(*(migrate(c, settings) for c in conns)))
            finally:
                for conn in conns:
                    await conn.close()

        applied = asyncio.run(go())
    finally:
        bouncer.stop()
    assert sorted(name for each in applied for name in each) == sorted(names)
    recorded = run_sql(dsn, "select name from auth.schema_migrations")
    assert sorted(r[0] for r in recorded) == sorted(names)


@pytest.mark.parametrize("command", [["migrate"], []], ids=["migrate", "serve"])
def test_a_misspelt_database_through_pgbouncer_is_refused_in_one_line(tmp_path, admin_dsn, command):
    """PgBouncer says "no such database" as a protocol violation (08P01), not as 3D000."""
    from .pgbouncer_support import PgBouncer

    password = "bouncer-client-password"
    bouncer = PgBouncer(admin_dsn, {"postgres": password}, pool_size=2).start()
    try:
        through = bouncer.dsn("no_such_db", "postgres", password)
        db = {"connection_string": through, "statement_cache": False, "connect_timeout": 20}
        path = write_config(tmp_path, db=db, port=free_port())
        result, took = run_cli(*command, "--config", str(path))
    finally:
        bouncer.stop()
    line = refusal(result)
    assert "no such database" in line and f"127.0.0.1:{bouncer.port}" in line, line
    assert "db.connection_string" in line and password not in result.stderr, line
    assert took < 15, took  # not retried


def test_a_migration_is_not_cut_by_the_pools_command_timeout(dsn):
    """In-app start-up without a direct connection migrates on a pooled connection: its
    db.command_timeout (for requests) must not cut a long index build, nor the wait for the
    lock another instance holds while it migrates."""
    from postgrest_auth.database import open_pool
    from postgrest_auth.migrate import lock_key, migration_connection

    settings = make_settings(dsn, db={"direct_connection_string": None, "command_timeout": 0.5})

    async def go() -> list[str]:
        holder = await asyncpg.connect(dsn)
        pool = await open_pool(settings)
        try:
            async with holder.transaction():
                await holder.execute(
                    "select pg_advisory_xact_lock(hashtext($1))", lock_key(settings)
                )
                running = asyncio.ensure_future(_migrate_on(pool))
                await asyncio.sleep(1.5)  # another instance migrating, three command_timeouts
                assert not running.done()
            return await running
        finally:
            await pool.close()
            await holder.close()

    async def _migrate_on(pool: asyncpg.Pool) -> list[str]:
        async with migration_connection(settings, pool) as conn:
            return await migrate(conn, settings)

    applied = asyncio.run(go())
    assert applied == [m.name for m in load_migrations(settings)]


def test_without_a_direct_connection_a_failing_file_leaves_nothing_behind(dsn):
    """One transaction for the check and every file: a half-migrated schema cannot happen."""
    settings = make_settings(dsn, db={"direct_connection_string": None})
    run_script(dsn, "create schema auth; create table auth.users (clash int)")

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn, settings)
        finally:
            await conn.close()

    with pytest.raises(asyncpg.PostgresError):
        asyncio.run(go())
    assert run_sql(dsn, "select to_regclass('auth.schema_migrations')") == [(None,)]
    assert run_sql(dsn, "select to_regclass('auth.sessions')") == [(None,)]


def test_status_names_what_migrate_would_apply(dsn):
    settings = make_settings(dsn)

    async def status() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await migration_status(conn, settings)
        finally:
            await conn.close()

    before = asyncio.run(status())
    assert [m.name for m in before.pending] == migrated(dsn, settings)
    assert asyncio.run(status()).current


# -- settings that name files --------------------------------------------------------------------


def pem_key(path: Path, public: bool = False) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if public
        else key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def key_settings(**key: str) -> dict[str, Any]:
    return {"secret": None, "jwt": {"keys": [{"kid": "k1", "algorithm": "RS256", **key}]}}


@pytest.mark.parametrize(
    ("case", "named", "fix"),
    [
        ("missing ca_file", "email.ca_file", "no file at"),
        ("ca_file not a certificate", "email.ca_file", "not a readable PEM certificate"),
        ("missing private key", "jwt.keys.0", "cannot read"),
        ("private key not a key", "jwt.keys.0", "not a PEM RS256 private key"),
        ("public key given as private", "jwt.keys.0", "not a PEM RS256 private key"),
        ("public key not a key", "jwt.keys.0", "not a PEM RS256 public key"),
        ("misspelt templates_dir", "email.templates_dir", "no directory at"),
        ("misspelt template file", "email.templates_dir", "welcom.txt is not a mail kind"),
    ],
)
def test_a_setting_naming_a_wrong_file_is_refused_in_one_line(tmp_path, case, named, fix):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN NOTHING-----\nbm90aGluZw==\n-----END NOTHING-----\n")
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "welcom.txt").write_text("Subject: Hi\n\nHello\n")
    values: dict[str, Any] = {
        "missing ca_file": {"email": {"ca_file": str(tmp_path / "ca.pem")}},
        "ca_file not a certificate": {"email": {"ca_file": str(garbage)}},
        "missing private key": key_settings(private_key_file=str(tmp_path / "k.pem")),
        "private key not a key": key_settings(private_key_file=str(garbage)),
        "public key given as private": key_settings(
            private_key_file=str(pem_key(tmp_path / "pub.pem", public=True))
        ),
        "public key not a key": {
            "jwt": {
                "keys": [
                    {
                        "kid": "k0",
                        "algorithm": "RS256",
                        "public_key_file": str(garbage),
                    }
                ]
            }
        },
        "misspelt templates_dir": {"email": {"templates_dir": str(tmp_path / "templatse")}},
        "misspelt template file": {"email": {"templates_dir": str(templates)}},
    }[case]
    # nothing listens at port 1: a refusal that needed the database would say so instead
    path = write_config(
        tmp_path, db={"connection_string": "postgresql://x@127.0.0.1:1/x"}, **values
    )
    data = json.loads(path.read_text())
    if data.get("secret") is None:
        data.pop("secret")
        path.write_text(json.dumps(data))
    line = refusal(run_cli("--config", str(path))[0])
    assert named in line and fix in line, line


def test_good_key_files_still_start(tmp_path, dsn, serving):
    port = free_port()
    private = pem_key(tmp_path / "private.pem")
    public = pem_key(tmp_path / "old-public.pem", public=True)
    path = write_config(tmp_path, db={"connection_string": dsn}, port=port)
    data = json.loads(path.read_text())
    data.pop("secret")
    data["jwt"] = {
        "keys": [
            {"kid": "new", "algorithm": "RS256", "private_key_file": str(private)},
            {"kid": "old", "algorithm": "RS256", "public_key_file": str(public)},
        ]
    }
    path.write_text(json.dumps(data))
    process = serving("--config", str(path))

    def up() -> bool:
        assert process.poll() is None, process.communicate()
        return health(port)

    wait_until(up, timeout=60, interval=0.1)
    keys = httpx.get(f"http://127.0.0.1:{port}/auth/.well-known/jwks.json").json()["keys"]
    assert {k["kid"] for k in keys} == {"new", "old"}
