"""`postgrest-auth --dev` (what `make run` starts): no configuration, embedded PostgreSQL."""

import os
import signal
import subprocess
import sys

import httpx
import jwt

from .support import free_port, wait_until


def _start(cwd, port):
    return subprocess.Popen(
        [sys.executable, "-m", "postgrest_auth", "--dev", "--port", str(port)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _stop(process) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    return output


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_dev_mode_serves_signups_and_keeps_its_secret(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}/auth"
    process = _start(tmp_path, port)
    try:
        wait_until(lambda: process.poll() is not None or _up(base + "/health"), timeout=60)
        assert process.poll() is None, process.stdout.read()
        r = httpx.post(
            base + "/users",
            json={
                "username": "devuser",
                "password": "dev password",
                "email": "dev@example.com",
            },
        )
        assert r.status_code == 201, r.text
        token = r.json()["access_token"]
        wait_until(lambda: _up(base + "/health"))
    finally:
        output = _stop(process)
    assert f"listening on {base}" in output
    assert "curl -s" in output and "db-pre-request" in output and "db-uri" in output
    assert "To: dev@example.com" in output  # console mail
    secret_file = tmp_path / ".postgrest-auth" / "secret"
    assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
    secret = secret_file.read_text().strip()
    assert len(secret) >= 32
    assert secret not in output.split("PostgREST settings")[0]  # only in the PostgREST hint
    jwt.decode(token, secret, algorithms=["HS256"], audience="authenticated")

    # A restart keeps the data and the secret: the same user signs in again.
    process = _start(tmp_path, port)
    try:
        wait_until(lambda: process.poll() is not None or _up(base + "/health"), timeout=60)
        r = httpx.post(base + "/refresh_token", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
    finally:
        _stop(process)
