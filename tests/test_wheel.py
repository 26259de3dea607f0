"""`pip install .` gives a package that carries its SQL: migrate works from any directory."""

import json
import subprocess
import sys
from pathlib import Path

from .support import SECRET, run_sql

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_sql_and_migrates_from_elsewhere(tmp_path, dsn):
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)], check=True)
    (wheel,) = wheels.glob("postgrest_auth-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)], check=True
    )
    assert (target / "postgrest_auth" / "sql" / "001_users.sql").is_file()
    config = tmp_path / "postgrest-auth.json"
    config.write_text(json.dumps({"secret": SECRET, "db": {"connection_string": dsn}}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The installed copy comes first on the path; the checkout is not reachable from here.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, postgrest_auth.cli as c; print(c.__file__, file=sys.stderr); c.main()",
            "migrate",
            "--config",
            str(config),
        ],
        cwd=elsewhere,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert str(target) in result.stderr  # the wheel's code ran, not the checkout's
    assert "applied: 001_users.sql" in result.stdout
    assert run_sql(dsn, "select count(*) from auth.schema_migrations")[0][0] >= 6
