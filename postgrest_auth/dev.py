"""`postgrest-auth --dev`: no configuration at all. Embedded PostgreSQL, console mail, a secret
generated once and kept under ./.postgrest-auth/ so tokens survive restarts."""

from __future__ import annotations

import logging
import secrets
import signal
import warnings
from pathlib import Path
from typing import Any

import asyncpg

from .config import ConfigError, Settings, deep_merge
from .sqltext import quote_ident, quote_literal


def _kept_secret(path: Path, size: int = 48) -> str:
    if not path.exists():
        path.write_text(secrets.token_urlsafe(size))
        path.chmod(0o600)
    return path.read_text().strip()


class DevEnvironment:
    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()

    def overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """Start the embedded PostgreSQL; the settings that point at it, under `overrides`."""
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        logging.getLogger("pgserver").setLevel(logging.WARNING)  # its every command at INFO
        try:
            import pgserver
        except ImportError:
            raise ConfigError("--dev needs pgserver: pip install 'postgrest-auth[dev]'") from None
        self.directory.mkdir(parents=True, exist_ok=True)
        self.server = pgserver.get_server(self.directory / "pgdata", cleanup_mode="stop")
        # pgserver stops PostgreSQL from an atexit hook; uvicorn re-raises SIGTERM after its
        # shutdown, and the default action would skip atexit and leave PostgreSQL running.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        dev_values: dict[str, Any] = {
            "secret": _kept_secret(self.directory / "secret"),
            # No PgBouncer here: mail wakes on NOTIFY over the same database, not by polling.
            "db": {
                "connection_string": self.server.get_uri(),
                "direct_connection_string": self.server.get_uri(),
            },
            "email": {"backend": "console"},
            "cookie": {"secure": False},
            "log": {"format": "text"},
        }
        return deep_merge(dev_values, overrides)

    async def prepare_postgrest(self, settings: Settings) -> str:
        """Give the authenticator a login for PostgREST and describe how to start it."""
        password = _kept_secret(self.directory / "authenticator-password", 24)
        authenticator = settings.roles.authenticator
        conn = await asyncpg.connect(settings.dsn())
        try:
            await conn.execute(
                f"alter role {quote_ident(authenticator)} login password {quote_literal(password)}"
            )
        finally:
            await conn.close()
        socket_dir = self.directory / "pgdata"
        base = f"http://{settings.host}:{settings.port}{settings.prefix}"
        return "\n".join(
            [
                f"postgrest-auth (dev) listening on {base}",
                "",
                "Try it:",
                f"  curl -s {base}/users -H 'Content-Type: application/json' \\",
                '       -d \'{"username": "alice", "password": "correct horse battery"}\'',
                "",
                "PostgREST settings that go with it (postgrest.conf):",
                f'  db-uri = "postgres://{authenticator}:{password}@/postgres?host={socket_dir}"',
                '  db-schemas = "api"',
                f'  db-anon-role = "{settings.roles.anonymous}"',
                f'  jwt-secret = "{settings.secret.get_secret_value() if settings.secret else ""}"',
                f'  db-pre-request = "{settings.db.schema_}.authenticate"',
                "",
                "Mail is printed here. Stop with Ctrl-C.",
            ]
        )


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)
