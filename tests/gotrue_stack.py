"""The stack a Supabase client meets, for tests of the real clients: the service (GoTrue API at
`/auth/v1`), the real PostgREST serving examples/todos.sql with row-level security, and nginx
putting both at one origin as Supabase lays them out (`/auth/v1/` and `/rest/v1/`): supabase-js
and supabase-py take that single URL and build both paths from it.

Not a fixture module: call `gotrue_stack(...)` (a context manager) from a test or a fixture of
any scope with the database, SMTP server and setting overrides it wants."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from postgrest_auth.config import Settings
from postgrest_auth.tokens import TokenIssuer

from .support import (
    PostgREST,
    Service,
    SmtpServer,
    allow_authenticator_login,
    free_port,
    make_settings,
    run_script,
    wait_until,
)

# Where mailed links send the browser by default (gotrue.site_url): an application's origin.
SITE = "http://app.test:5173"
TODOS_SQL = Path(__file__).parent.parent / "examples" / "todos.sql"
TEMP_DIRECTORIES = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def service_settings(
    dsn: str, smtp: SmtpServer, access_token_seconds: int | None = None, **overrides: Any
) -> Settings:
    """Test settings with `gotrue.site_url` = SITE (unless overridden). `access_token_seconds`
    goes below the configuration's 60-s floor on purpose: a test can then wait for a real expiry
    (auth-js refreshes 90 s ahead, so it treats such a token as always due)."""
    gotrue = {"site_url": SITE, **overrides.pop("gotrue", {})}
    settings = make_settings(dsn, smtp.port, gotrue=gotrue, **overrides)
    if access_token_seconds is not None:
        payload = settings.payload.model_copy(update={"exp": access_token_seconds})
        settings = settings.model_copy(update={"payload": payload})
    return settings


def start_service(
    dsn: str, smtp: SmtpServer, access_token_seconds: int | None = None, **overrides: Any
) -> Service:
    """The real service on a loopback port (stop it with `.stop()`)."""
    return Service(service_settings(dsn, smtp, access_token_seconds, **overrides)).start()


def anon_key(settings: Settings, days: int = 1) -> str:
    """What `postgrest-auth keys anon` prints: Supabase's anon key, which PostgREST takes as
    `roles.anonymous`, signed with the service's own key (HS256 secret or jwt.keys)."""
    return TokenIssuer(settings).api_key(settings.roles.anonymous, days)


def postgrest_jwt_secret(service: Service) -> str | None:
    """PostgREST's jwt-secret for this service: the published JWKS when tokens are signed with
    asymmetric keys (`jwt.keys`); None for the HS256 secret (support.PostgREST's default)."""
    if not service.settings.jwt.keys:
        return None
    answer = httpx.get(service.base + "/v1/.well-known/jwks.json", timeout=10)
    answer.raise_for_status()
    return answer.text


def nginx_binary() -> str:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise AssertionError("nginx is missing: run `make test` (it apt-get installs it)")
    return binary


class Nginx:
    """One origin for both servers: `/auth/` to the service (path kept), `/rest/v1/` to
    PostgREST (prefix removed), as Supabase's gateway routes them."""

    def __init__(self, directory: Path, auth_port: int, rest_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        for name in TEMP_DIRECTORIES:
            (directory / name).mkdir(exist_ok=True)
        temp = " ".join(f"{name}_temp_path {directory / name};" for name in TEMP_DIRECTORIES)
        self.config = directory / "nginx.conf"
        self.config.write_text(
            f"daemon off; pid {directory}/nginx.pid; error_log {directory}/error.log warn;\n"
            "events {}\n"
            f"http {{ access_log off; {temp}\n"
            f"  server {{ listen 127.0.0.1:{self.port};\n"
            f"    location /auth/ {{ proxy_pass http://127.0.0.1:{auth_port}; }}\n"
            f"    location /rest/v1/ {{ proxy_pass http://127.0.0.1:{rest_port}/; }} }} }}\n"
        )
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, health_path: str) -> Nginx:
        """Start nginx and wait until `health_path` answers 200 through it."""
        self.process = subprocess.Popen(
            [nginx_binary(), "-e", str(self.directory / "error.log"), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                log = (self.directory / "error.log").read_text(errors="replace")
                raise AssertionError(f"nginx exited: {log[-2000:]}")
            try:
                return httpx.get(self.url + health_path, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=15, interval=0.05)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@dataclass(frozen=True)
class GoTrueStack:
    """The running stack. `url` is what `createClient(url, anon_key)` takes."""

    service: Service
    rest: PostgREST
    nginx: Nginx
    anon_key: str

    @property
    def url(self) -> str:
        return self.nginx.url

    @property
    def auth_url(self) -> str:
        """The GoTrue API through the gateway (what auth-js / supabase_auth take)."""
        return self.nginx.url + "/auth/v1"

    @property
    def rest_url(self) -> str:
        return self.nginx.url + "/rest/v1"


@contextmanager
def gotrue_stack(
    dsn: str,
    admin_dsn: str,
    smtp: SmtpServer,
    access_token_seconds: int | None = None,
    pre_request: str | None = "check_token_count",
    **overrides: Any,
) -> Iterator[GoTrueStack]:
    """Start the service (settings: `make_settings(dsn, smtp.port, **overrides)` with SITE as
    site_url), load the to-do example into `dsn`, start PostgREST on it (logged in as the
    authenticator, verifying tokens with the service's secret or JWKS) and nginx in front of
    both; everything stops on exit."""
    with ExitStack() as stack:
        service = start_service(dsn, smtp, access_token_seconds, **overrides)
        stack.callback(service.stop)
        run_script(dsn, TODOS_SQL.read_text())
        allow_authenticator_login(admin_dsn, service.settings)
        rest = PostgREST(
            dsn,
            service.settings,
            pre_request=pre_request,
            jwt_secret=postgrest_jwt_secret(service),
        ).start()
        stack.callback(rest.stop)
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pa-nginx-")))
        nginx = Nginx(directory, service.port, rest.port)
        stack.callback(nginx.stop)
        nginx.start(service.settings.prefix + "/v1/health")
        yield GoTrueStack(service, rest, nginx, anon_key(service.settings))
