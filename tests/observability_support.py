"""A service run as its operators run it: `python -m postgrest_auth` in a process of its own,
its whole output (stdout and stderr) kept in a file to read afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from .support import free_port, wait_until


class Served:
    """`python -m postgrest_auth` in a process group of its own, its output in a file."""

    def __init__(self, tmp_path: Path, settings: dict) -> None:
        self.port = free_port()
        config = tmp_path / "postgrest-auth.json"
        config.write_text(json.dumps({**settings, "port": self.port}))
        self.tmp = tmp_path / "tmp"  # TMPDIR: where the metrics directory is made
        self.tmp.mkdir()
        self.output = tmp_path / "output.log"
        with self.output.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "postgrest_auth", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "TMPDIR": str(self.tmp)},
            )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_up(self) -> None:
        def up() -> bool:
            assert self.process.poll() is None, self.output.read_text()
            try:
                return httpx.get(self.url + "/auth/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def metrics_directory(self) -> Path:
        [directory] = self.tmp.glob("postgrest-auth-metrics-*")
        return directory
