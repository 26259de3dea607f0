"""`workers`: several processes serve one port, each with the same configuration."""

import json
import signal
import subprocess
import sys
import time

import httpx

from .support import SECRET, free_port, wait_until


def _children(pid: int) -> list[str]:
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "args="], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if "multiprocessing.spawn" in line]


def test_two_workers_serve_and_stop_together(tmp_path, dsn):
    port = free_port()
    config = tmp_path / "postgrest-auth.json"
    config.write_text(
        json.dumps(
            {
                "secret": SECRET,
                "port": port,
                "workers": 2,
                "log_level": "warning",
                "db": {"connection_string": dsn},
                "email": {"backend": "console"},
                "passwords": {"bcrypt_rounds": 4},
            }
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "postgrest_auth", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/auth"
    try:

        def up() -> bool:
            assert process.poll() is None, process.stdout.read()
            try:
                return httpx.get(base + "/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60)
        assert len(_children(process.pid)) == 2
        with httpx.Client(base_url=base) as http:
            for n in range(6):
                r = http.post("/users", json={"username": f"worker{n}", "password": "pw worker"})
                assert r.status_code == 201, r.text
                r = http.post("/refresh_token", json={"refresh_token": r.json()["refresh_token"]})
                assert r.status_code == 200, r.text
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    time.sleep(0.5)
    assert _children(process.pid) == []
