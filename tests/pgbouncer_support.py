"""Debian's real PgBouncer in transaction pooling mode, in front of the tests' PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs, quote, urlsplit

import asyncpg

from .support import free_port, wait_until

BINARY = "/usr/sbin/pgbouncer"
# PgBouncer refuses to run as root; as root the tests hand it to the owner of PostgreSQL's
# socket directory (pgserver's own user), who may open the socket, or else to this one.
UNPRIVILEGED_USER = "nobody"


class PgBouncer:
    """pool_mode = transaction with `pool_size` server connections per database and user.

    Clients log in with SCRAM against `users` (name → password); PgBouncer logs in to
    PostgreSQL with the same, over the unix socket or host of `admin_dsn`.
    """

    def __init__(self, admin_dsn: str, users: dict[str, str], pool_size: int = 2) -> None:
        if not os.access(BINARY, os.X_OK):
            raise AssertionError(
                f"PgBouncer is missing at {BINARY}: run `make test` (it installs Debian's "
                "pgbouncer), or `apt-get install pgbouncer`"
            )
        self.users = users
        self.pool_size = pool_size
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="pa-pgb-", dir="/tmp"))
        self.process: subprocess.Popen[bytes] | None = None
        parts = urlsplit(admin_dsn)
        socket_dir = parse_qs(parts.query).get("host", [None])[0]
        self.server_host = socket_dir or parts.hostname or "localhost"
        self.server_port = parts.port or 5432

    def config(self) -> str:
        return "\n".join(
            [
                "[databases]",
                # Any database name the client asks for, on the tests' PostgreSQL.
                f"* = host={self.server_host} port={self.server_port}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {self.port}",
                "unix_socket_dir =",
                "auth_type = scram-sha-256",
                f"auth_file = {self.directory / 'userlist.txt'}",
                "pool_mode = transaction",
                f"default_pool_size = {self.pool_size}",
                "max_client_conn = 200",
                # No ignore_startup_parameters: asyncpg sends only client_encoding and
                # application_name, PostgREST 12 nothing more, and PgBouncer tracks both.
                "server_login_retry = 1",
                "",
            ]
        )

    def start(self) -> Self:
        userlist = "".join(f'"{name}" "{password}"\n' for name, password in self.users.items())
        (self.directory / "userlist.txt").write_text(userlist)
        (self.directory / "pgbouncer.ini").write_text(self.config())
        self.log = (self.directory / "pgbouncer.log").open("wb")
        command = [BINARY, str(self.directory / "pgbouncer.ini")]
        if os.geteuid() == 0:
            entry = self._unprivileged_user()
            command[1:1] = ["-u", entry.pw_name]
            for path in (self.directory, *self.directory.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._accepts, timeout=20, interval=0.1)
        except AssertionError as exc:
            tail = self.output()[-2000:]
            raise AssertionError(f"PgBouncer did not let a client in: {tail}") from exc
        return self

    def _unprivileged_user(self) -> pwd.struct_passwd:
        if self.server_host.startswith("/"):
            owner = pwd.getpwuid(os.stat(self.server_host).st_uid)
            if owner.pw_uid != 0:
                return owner
        return pwd.getpwnam(UNPRIVILEGED_USER)

    def _accepts(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"PgBouncer exited: {self.output()[-2000:]}")
        name, password = next(iter(self.users.items()))

        async def probe() -> bool:
            try:
                conn = await asyncpg.connect(self.dsn("postgres", name, password), timeout=2)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                return False
            await conn.close()
            return True

        return asyncio.run(probe())

    def dsn(self, database: str, user: str, password: str) -> str:
        auth = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{quote(database, safe='')}"

    def output(self) -> str:
        return (self.directory / "pgbouncer.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)
