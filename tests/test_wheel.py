"""`pip install .` gives a package that carries its SQL and serves on its own: migrate works from
any directory, and the console script of a clean venv (the wheel and its dependencies, nothing
from the checkout) serves requests."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .support import SECRET, free_port, run_sql, wait_until

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("wheels")
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)], check=True)
    (built,) = wheels.glob("postgrest_auth-*.whl")
    return built


def test_the_wheel_carries_sql_and_migrates_from_elsewhere(tmp_path, dsn, wheel):
    pip = [sys.executable, "-m", "pip"]
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


def test_a_clean_venv_serves_from_the_console_script(tmp_path, dsn, wheel):
    """What the Dockerfile's final stage does: a fresh venv, the wheel and the dependencies it
    declares (from the index pip is configured with here), then `postgrest-auth` alone."""
    venv = tmp_path / "venv"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    took = time.monotonic() - started
    print(f"\nclean venv with the wheel and its dependencies: {took:.1f} s")
    assert took < 300, f"installing took {took:.0f} s"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    config = elsewhere / "postgrest-auth.json"
    config.write_text(
        json.dumps(
            {
                "secret": SECRET,
                "port": port,
                "db": {"connection_string": dsn},
                "passwords": {"bcrypt_rounds": 4},
                "email": {"backend": "console"},
            }
        )
    )
    # Nothing of the checkout or of the test venv: no PYTHONPATH, PATH without either.
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import postgrest_auth; print(postgrest_auth.__file__)",
        ],
        cwd=elsewhere,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(venv)), where.stdout
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(venv / "bin" / "postgrest-auth"), "--config", str(config)],
            cwd=elsewhere,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}/auth"
    try:

        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"postgrest-auth exited: {log.read_text()[-3000:]}")
            try:
                return httpx.get(base + "/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=60, interval=0.1)
        answer = httpx.post(
            base + "/users", json={"username": "wheeluser", "password": "correct horse"}
        )
        assert answer.status_code == 201, answer.text
        bearer = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        assert httpx.get(base + "/user", headers=bearer).json()["username"] == "wheeluser"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    # uvicorn ends by re-raising the signal it stopped on: a clean stop by SIGTERM.
    assert process.returncode in (0, -signal.SIGTERM), log.read_text()[-3000:]
    assert "Application shutdown complete" in log.read_text()
