"""`workers`: several processes serve one port, each with the same configuration."""

import json
import os
import signal
import subprocess
import sys

import httpx

from .support import SECRET, free_port, process_group_members, wait_until


def _workers(pid: int) -> list[str]:
    """The worker processes of a running `pid` (its children: it is alive, so they are)."""
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
    # A process group of its own: whatever the service starts stays in it, even once orphaned
    # (an orphan is re-parented, so its parent's pid would no longer find it).
    process = subprocess.Popen(
        [sys.executable, "-m", "postgrest_auth", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    group = os.getpgid(process.pid)
    assert group == process.pid
    base = f"http://127.0.0.1:{port}/auth"
    try:
        try:

            def up() -> bool:
                assert process.poll() is None, process.stdout.read()
                try:
                    return httpx.get(base + "/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(up, timeout=60)
            workers = _workers(process.pid)
            assert len(workers) == 2, workers
            members = process_group_members(group)
            assert len(members) >= 3, members  # the supervisor and its two workers
            with httpx.Client(base_url=base) as http:
                for n in range(6):
                    r = http.post(
                        "/users", json={"username": f"worker{n}", "password": "pw worker"}
                    )
                    assert r.status_code == 201, r.text
                    r = http.post(
                        "/refresh_token", json={"refresh_token": r.json()["refresh_token"]}
                    )
                    assert r.status_code == 200, r.text
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
        # The supervisor has exited: each worker must have ended before it did. Only
        # multiprocessing's resource tracker may still be on its way out (it leaves when it
        # reads its pipe's end).
        left = process_group_members(group)
        assert [p for p in left if "multiprocessing.resource_tracker" not in p] == [], left
        try:
            wait_until(lambda: process_group_members(group) == [], timeout=5)
        except AssertionError:
            raise AssertionError(f"outlived the service: {process_group_members(group)}") from None
    finally:
        try:
            os.killpg(group, signal.SIGKILL)  # leaked workers, if any, do not outlive the test
        except ProcessLookupError:
            pass
