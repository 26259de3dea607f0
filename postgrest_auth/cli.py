"""Command line: serve (default), migrate, sql, mail status|retry,
users show|app-metadata|remove-factors, keys anon|service.
The original's flags are kept."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg

from . import __version__
from .config import ConfigError, Settings, load_settings
from .mail import MailTemplates
from .migrate import MigrationError, migrate, migration_status, rendered_sql
from .observability.logs import configure_logging, logging_config
from .observability.multiprocess import use_fresh_directory
from .reach import DatabaseUnreachable, connection_setting, reach

COMMANDS = ("serve", "migrate", "sql", "mail", "users", "keys")


def build_parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"postgrest-auth{'' if command == 'serve' else ' ' + command}",
        description="Authentication server for PostgREST. Commands: " + ", ".join(COMMANDS),
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("-c", "--config", type=Path, help="postgrest-auth.json to read")
    parser.add_argument("-A", "--app", dest="app_name", help="app_name, used in mail")
    parser.add_argument("-C", "--connection", help="db.connection_string")
    parser.add_argument("-s", "--schema", help="db.schema")
    parser.add_argument("-t", "--table", help="db.table")
    parser.add_argument("-e", "--expire", type=int, help="payload.exp, seconds")
    parser.add_argument("-i", "--issuer", help="payload.iss")
    parser.add_argument("-S", "--secret", help="secret (prefer the file or the environment)")
    parser.add_argument("-p", "--port", type=int, help="port to listen on")
    parser.add_argument("--host", help="address to listen on")
    parser.add_argument("-w", "--workers", type=int, help="worker processes (default 1)")
    parser.add_argument(
        "--dev",
        action="store_true",
        help="embedded PostgreSQL under ./.postgrest-auth/, console mail, generated secret",
    )
    if command == "mail":
        parser.add_argument("action", choices=["status", "retry"])
    if command == "users":
        from .users_cli import ACTIONS

        parser.add_argument("action", choices=ACTIONS)
        parser.add_argument("user", help="the account's username, email or UUID")
        parser.add_argument(
            "change",
            nargs="?",
            help="app-metadata: a JSON object merged in (a key given as null is removed)",
        )
    if command == "keys":
        parser.add_argument(
            "role",
            choices=["anon", "service"],
            help="anon: the key signed-out clients send (roles.anonymous); service: the admin"
            " API's key (roles.service)",
        )
        parser.add_argument("--days", type=int, default=3650, help="lifetime (default 3650)")
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    pairs: dict[str, Any] = {
        "app_name": args.app_name,
        "secret": args.secret,
        "port": args.port,
        "host": args.host,
        "workers": args.workers,
        "db": {"connection_string": args.connection, "schema": args.schema, "table": args.table},
        "payload": {"exp": args.expire, "iss": args.issuer},
    }

    def prune(value: dict[str, Any]) -> dict[str, Any]:
        kept = {k: prune(v) if isinstance(v, dict) else v for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not None and v != {}}

    return prune(pairs)


def fail(message: str) -> None:
    print(f"postgrest-auth: {message}", file=sys.stderr)
    raise SystemExit(2)


async def _with_connection(settings: Settings, work: Any, *, direct: bool = False) -> Any:
    """Run `work(conn)` on one connection, waited for as start-up waits (db.connect_timeout).
    `direct`: past PgBouncer when db.direct_connection_string is given (the migration lock)."""
    from .database import statement_cache_size

    given = settings.db.direct_connection_string if direct else None
    dsn = given.get_secret_value() if given else settings.dsn()
    setting = "db.direct_connection_string" if given else connection_setting(settings)

    async def connect(seconds: float) -> asyncpg.Connection:
        return await asyncpg.connect(
            dsn, timeout=seconds, statement_cache_size=statement_cache_size(settings)
        )

    try:
        conn = await reach(connect, settings, dsn, setting)
    except DatabaseUnreachable as exc:
        fail(str(exc))
    try:
        return await work(conn)
    finally:
        await conn.close()


async def _migrate(settings: Settings) -> list[str]:
    async def work(conn: asyncpg.Connection) -> list[str]:
        try:
            return await migrate(conn, settings)
        except MigrationError as exc:
            fail(str(exc))
        except asyncpg.InsufficientPrivilegeError as exc:
            fail(
                f"db.connection: the database user may not do this ({exc}); connect as the "
                "schema owner with CREATEROLE, or run `postgrest-auth sql` as a superuser"
            )
        return []

    return await _with_connection(settings, work, direct=True)


async def _check_migrations(settings: Settings) -> None:
    """db.auto_migrate: false: serve only a database with exactly this version's versioned files
    applied; repeatable files that differ are a warning (a rolling upgrade puts the newer
    release's text there). db.direct_connection_string, when given, must connect now, not
    only when the mail worker first needs it."""

    async def work(conn: asyncpg.Connection) -> None:
        status = await migration_status(conn, settings)
        problem = status.problem()
        if problem is not None:
            fail(problem)
        warning = status.drift_warning()
        if warning is not None:
            logging.getLogger("postgrest_auth.migrate").warning("%s", warning)

    async def connected(conn: asyncpg.Connection) -> None:
        await conn.fetchval("select 1")

    await _with_connection(settings, work)
    if settings.db.direct_connection_string is not None:
        await _with_connection(settings, connected, direct=True)


async def _mail(settings: Settings, action: str) -> None:
    from .store import Store

    store = Store(settings)

    async def work(conn: asyncpg.Connection) -> None:
        if action == "retry":
            retried = await store.retry_failed_mail(conn)
            print(
                f"{retried['queued']} failed mail queued again"
                f" ({retried['expired']} with an expired link: sent with a new one, or not at"
                " all if a newer mail or a change to the account made it moot)"
            )
            if retried["erased"]:
                print(
                    f"{retried['erased']} failed mail not queued: erased after"
                    " email.failed_retention days"
                )
            return
        row = await store.outbox_status(conn)
        erased = row["erased"] and f" ({row['erased']} erased after email.failed_retention days)"
        print(f"pending: {row['pending']}\nsent: {row['sent']}")
        print(f"failed: {row['failed']}{erased or ''}")
        print(f"oldest pending: {row['oldest_pending'] or '-'}")
        print(f"last error: {row['last_error'] or '-'}")

    await _with_connection(settings, work)


async def _users(settings: Settings, args: argparse.Namespace) -> None:
    from .users_cli import UsageError, run

    try:
        await run(settings, args.action, args.user, args.change)
    except UsageError as exc:
        fail(str(exc))
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        fail(f"db.connection: {type(exc).__name__}: {exc}")


# How `serve` hands its configuration to worker processes, which uvicorn starts afresh.
WORKER_ARGS = "_POSTGREST_AUTH_WORKER_ARGS"


def _keys(settings: Settings, role: str, days: int) -> None:
    """Print a long-lived key signed with the service's key: Supabase's anon or service_role
    key. Treat the service key as a password: it opens the admin API."""
    from .tokens import TokenIssuer

    if days < 1:
        fail("keys: --days must be at least 1")
    try:
        issuer = TokenIssuer(settings)
    except (StopIteration, ValueError, OSError) as exc:
        fail(f"keys: no signing key: set secret or jwt.keys ({type(exc).__name__})")
    name = settings.roles.anonymous if role == "anon" else settings.roles.service
    print(issuer.api_key(name, days))


def worker_app() -> Any:
    """The app of one worker process: the same configuration as the parent, read again."""
    from .app import create_app

    args = json.loads(os.environ[WORKER_ARGS])
    config = Path(args["config"]) if args["config"] else None
    return create_app(load_settings(config, args["overrides"]), migrate_on_start=False)


def serve(
    settings: Settings, config: Path | None, overrides: dict[str, Any], banner: str | None
) -> None:
    """Serve, migrations already applied. Several workers each read the configuration again.
    At SIGTERM/SIGINT: refuse new connections at once, answer the accepted ones, exit within
    `shutdown_timeout`."""
    import uvicorn

    from .draining import DrainingHttpProtocol, requests_budget
    from .supervisor import Supervisor

    if banner:
        print(banner, flush=True)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "proxy_headers": False,  # client addresses come from http.client_address_header
        "server_header": False,
        "log_config": logging_config(settings),  # the same format in every worker
        "timeout_graceful_shutdown": requests_budget(settings.shutdown_timeout),
        "http": DrainingHttpProtocol,
    }
    if settings.workers == 1:
        from .app import create_app  # only here: a supervisor need not import it (start-up)

        uvicorn.run(create_app(settings, migrate_on_start=False), **options)
        return
    os.environ[WORKER_ARGS] = json.dumps(
        {"config": str(config) if config else None, "overrides": overrides}
    )
    # uvicorn.run's own steps for workers, with a supervisor that closes the socket at the signal
    server = uvicorn.Config(
        "postgrest_auth.cli:worker_app", factory=True, workers=settings.workers, **options
    )
    supervisor = Supervisor(server, [server.bind_socket()], stop_within=settings.shutdown_timeout)
    supervisor.run()
    if supervisor.failed:
        raise SystemExit(3)  # as uvicorn's own exit when startup fails


def main(argv: list[str] | None = None) -> None:
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = args_list.pop(0) if args_list and args_list[0] in COMMANDS else "serve"
    args = build_parser(command).parse_args(args_list)
    dev = None
    overrides = overrides_from(args)
    try:
        if args.dev:
            from .dev import DevEnvironment

            dev = DevEnvironment(Path(".postgrest-auth"))
            overrides = dev.overrides(overrides)
        settings = load_settings(args.config, overrides)
    except ConfigError as exc:
        fail(str(exc))
    settings = configure_logging(settings, dev=dev is not None)  # log.format: json or text
    if command == "sql":
        sys.stdout.write(rendered_sql(settings))
    elif command == "migrate":
        applied = asyncio.run(_migrate(settings))
        print(f"applied: {', '.join(applied)}" if applied else "nothing to apply")
    elif command == "mail":
        asyncio.run(_mail(settings, args.action))
    elif command == "users":
        asyncio.run(_users(settings, args))
    elif command == "keys":
        _keys(settings, args.role, args.days)
    else:
        try:  # refuse a broken template override in one line, before anything starts
            MailTemplates(settings.email.templates_dir)
        except (ValueError, OSError) as exc:
            fail(str(exc))
        # Workers start only once the database answers (and is migrated): one line otherwise.
        if settings.db.auto_migrate or dev is not None:
            asyncio.run(_migrate(settings))
        else:
            asyncio.run(_check_migrations(settings))
        banner = asyncio.run(dev.prepare_postgrest(settings)) if dev is not None else None
        if settings.metrics.enabled:  # before prometheus_client is imported, for every worker
            use_fresh_directory()
        serve(settings, args.config, overrides, banner)


if __name__ == "__main__":
    main()
