"""The command line as users run it, in a subprocess: refusals, `sql`, `migrate`, serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from .support import SECRET, free_port, run_sql, wait_until

ROOT = Path(__file__).parent.parent


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTGREST_AUTH_")}
    env.pop("PORT", None)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "postgrest_auth", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or ROOT,
        timeout=timeout,
        check=False,
    )


def config(tmp_path: Path, dsn: str | None = None, **extra: Any) -> Path:
    data: dict[str, Any] = {"secret": SECRET, "passwords": {"bcrypt_rounds": 4}}
    if dsn is not None:
        data["db"] = {"connection_string": dsn}
    data.update(extra)
    path = tmp_path / "postgrest-auth.json"
    path.write_text(json.dumps(data))
    return path


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"secret": SECRET, "colour": "blue"}, "colour"),
        ({"secret": SECRET, "port": "eighty"}, "port"),
        ({"secret": "secret"}, "secret"),
        ({}, "secret"),
        ({"secret": SECRET, "usernames": {"pattern": "("}}, "usernames.pattern"),
    ],
)
def test_bad_config_exits_with_one_line(tmp_path, data, named):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    result = run_cli("--config", str(path))
    assert result.returncode != 0
    line = one_line(result.stderr)
    assert line.startswith("postgrest-auth: ") and named in line, line
    assert result.stdout == ""
    if "secret" in data and data["secret"] == "secret":
        assert "'secret'" not in line


def test_bad_json_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"secret": ')
    result = run_cli("migrate", "-c", str(path))
    assert result.returncode != 0
    assert str(path) in one_line(result.stderr)


def test_unreachable_database_is_one_line(tmp_path):
    dsn = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    path = config(tmp_path, db={"connection_string": dsn, "connect_timeout": 1})
    result = run_cli("migrate", "--config", str(path))
    assert result.returncode != 0
    assert "db.connection" in one_line(result.stderr)


def test_sql_prints_the_rendered_migrations(tmp_path):
    path = config(tmp_path, db={"schema": "my auth", "table": "people"})
    result = run_cli("sql", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert '"my auth"."people"' in result.stdout
    assert 'create or replace function "my auth".check_token_count()' in result.stdout
    assert SECRET not in result.stdout


def test_console_script_sql(tmp_path):
    script = Path(sys.executable).with_name("postgrest-auth")
    assert script.is_file(), "install the package: pip install -e .[test] (make test does)"
    path = config(tmp_path, db={"schema": 'odd"schema'})
    result = subprocess.run(
        [str(script), "sql", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"odd""schema"."users"' in result.stdout


def test_sql_flags_override_the_file(tmp_path):
    path = config(tmp_path)
    result = run_cli("sql", "--config", str(path), "--schema", "flagged", "-t", "members")
    assert result.returncode == 0, result.stderr
    assert '"flagged"."members"' in result.stdout


def test_migrate_twice(tmp_path, dsn):
    path = config(tmp_path, dsn)
    first = run_cli("migrate", "--config", str(path))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("applied: 001_")
    before = run_sql(dsn, "select name, checksum, applied_at from auth.schema_migrations")
    second = run_cli("migrate", "--config", str(path))
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "nothing to apply"
    after = run_sql(dsn, "select name, checksum, applied_at from auth.schema_migrations")
    assert sorted(map(tuple, after)) == sorted(map(tuple, before))


def test_migrate_reads_working_directory_file(tmp_path, dsn):
    config(tmp_path, dsn)
    result = run_cli("migrate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("applied:")


def test_changed_migration_is_one_line(tmp_path, dsn):
    path = config(tmp_path, dsn)
    assert run_cli("migrate", "--config", str(path)).returncode == 0
    run_sql(dsn, "update auth.schema_migrations set checksum = 'x' where name like '002_%'")
    result = run_cli("migrate", "--config", str(path))
    assert result.returncode != 0
    assert "002_" in one_line(result.stderr)


def test_serve_with_port_flag_and_stop(tmp_path, dsn):
    path = config(tmp_path, dsn, email={"backend": "console"})
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTGREST_AUTH_")}
    env["PYTHONPATH"] = str(ROOT)
    env["PORT"] = "1"  # the flag wins over PORT
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "postgrest_auth",
            "--config",
            str(path),
            "-p",
            str(port),
            "--app",
            "Flagged",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:

        def up() -> bool:
            assert process.poll() is None, process.communicate()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/auth/health", timeout=1).is_success
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=30, interval=0.1)
        r = httpx.post(
            f"http://127.0.0.1:{port}/auth/users",
            json={"username": "alice", "password": "correct horse"},
        )
        assert r.status_code == 201, r.text
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=15)
    assert "correct horse" not in stderr.decode()
    assert SECRET not in stderr.decode()
