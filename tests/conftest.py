"""Fixtures: one PostgreSQL for the run, a fresh database per test, SMTP, the service."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import Service, SmtpServer, dsn_for_database, make_settings, run_sql


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    """POSTGREST_AUTH_TEST_DSN (a superuser), or an embedded PostgreSQL 16 from pgserver."""
    given = os.environ.get("POSTGREST_AUTH_TEST_DSN")
    if given:
        yield given
        return
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - the Makefile installs it
        raise AssertionError(
            "pgserver is not installed: run `make test`, or set POSTGREST_AUTH_TEST_DSN"
        ) from exc
    # Short path: PostgreSQL's unix socket path is limited to about 100 bytes.
    directory = Path(tempfile.mkdtemp(prefix="pa-pg-", dir="/tmp"))
    server = pgserver.get_server(directory, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture
def dsn(admin_dsn: str) -> Iterator[str]:
    """A fresh database for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    run_sql(admin_dsn, f'create database "{name}"')
    try:
        yield dsn_for_database(admin_dsn, name)
    finally:
        run_sql(admin_dsn, f'drop database if exists "{name}" with (force)')


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def service(dsn: str, smtp: SmtpServer) -> Iterator[Service]:
    running = Service(make_settings(dsn, smtp.port)).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def client(service: Service):  # type: ignore[no-untyped-def]
    with service.client() as http:
        yield http


@pytest.fixture
def load_todos(dsn: str):  # type: ignore[no-untyped-def]
    """Load examples/todos.sql (the application schema README tells users to copy)."""

    def load() -> None:
        from .support import run_script

        run_script(dsn, (Path(__file__).parent.parent / "examples" / "todos.sql").read_text())

    return load


@pytest.fixture
def postgrest_factory(admin_dsn: str, dsn: str):  # type: ignore[no-untyped-def]
    """Start real PostgREST processes against this test's database; all stopped afterwards."""
    from .support import PostgREST, allow_authenticator_login

    started: list[PostgREST] = []

    def start(settings, **kwargs):  # type: ignore[no-untyped-def]
        allow_authenticator_login(admin_dsn, settings)
        process = PostgREST(dsn, settings, **kwargs).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
