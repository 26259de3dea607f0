"""Several service processes on one database behind a real nginx upstream, as run in production
(DESIGN §12): each instance is `python -m postgrest_auth --config …` in its own process group,
so a test can SIGKILL one and watch nginx and the other carry on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx

from .gotrue_stack import TEMP_DIRECTORIES, nginx_binary
from .support import ServiceProcess, free_port, service_config, wait_until

ROOT = Path(__file__).resolve().parent.parent


def instance_config(dsn: str, smtp_port: int, public_url: str, **overrides: Any) -> dict[str, Any]:
    """The one configuration every instance shares: same database, secret and SMTP server.

    Client addresses come from X-Forwarded-For (read from the right, skipping trusted proxies:
    nginx on 127.0.0.1), so per-address limits count clients, not the proxy."""
    return service_config(
        dsn,
        smtp_port,
        **{
            "host": "127.0.0.1",
            "public_url": public_url,
            "http": {
                "client_address_header": "X-Forwarded-For",
                "trusted_proxies": ["127.0.0.1"],
            },
            **overrides,
        },
    )


class Instance(ServiceProcess):
    """One instance, as users start it; up once /auth/health answers."""

    def __init__(self, name: str, directory: Path, config: dict[str, Any]) -> None:
        super().__init__(directory, config, name)

    def start(self) -> Self:
        return super().start().wait_up()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/auth", timeout=30)


class NginxUpstream:
    """nginx with one `upstream` of every instance; a dead one is skipped (proxy_next_upstream)
    and the client's address travels in X-Forwarded-For."""

    def __init__(self, directory: Path, ports: list[int]) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        for name in TEMP_DIRECTORIES:
            (directory / name).mkdir(exist_ok=True)
        temp = "\n".join(f"  {name}_temp_path {directory / name};" for name in TEMP_DIRECTORIES)
        # A failed server is tried again after 1 s (10 s by default): while one is dead, nginx
        # keeps trying it, and only proxy_next_upstream keeps those requests from failing.
        servers = "\n".join(
            f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=1s;" for port in ports
        )
        self.config = directory / "nginx.conf"
        self.config.write_text(
            f"daemon off; pid {directory}/nginx.pid; error_log {directory}/error.log warn;\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n  access_log off;\n{temp}\n"
            f"  upstream postgrest_auth {{\n{servers}\n    keepalive 16;\n  }}\n"
            f"  server {{\n    listen 127.0.0.1:{self.port};\n"
            "    location /auth/ {\n"
            "      proxy_pass http://postgrest_auth;\n"
            "      proxy_http_version 1.1;\n"
            '      proxy_set_header Connection "";\n'
            "      proxy_set_header Host $http_host;\n"
            "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
            "      proxy_next_upstream error timeout;\n"
            "      proxy_connect_timeout 2s;\n"
            "    }\n  }\n}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        self.process = subprocess.Popen(
            [nginx_binary(), "-e", str(self.directory / "error.log"), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited: {self.error_log()[-2000:]}")
            try:
                return httpx.get(self.url + "/auth/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=15, interval=0.05)
        return self

    def error_log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/auth", timeout=30)


@dataclass
class Cluster:
    """Two (or more) instances and the nginx in front of them."""

    instances: list[Instance]
    nginx: NginxUpstream

    def stop(self) -> None:
        self.nginx.stop()
        for instance in self.instances:
            instance.stop()


def start_cluster(directory: Path, config: dict[str, Any], count: int = 2) -> Cluster:
    """`count` instances of one configuration, started one after another, then nginx."""
    instances: list[Instance] = []
    nginx: NginxUpstream | None = None
    try:
        for index in range(count):
            instance = Instance(f"instance-{index + 1}", directory, config)
            instances.append(instance)
            instance.start()
        nginx = NginxUpstream(directory, [instance.port for instance in instances]).start()
    except BaseException:
        if nginx is not None:
            nginx.stop()
        for instance in instances:
            instance.stop()
        raise
    return Cluster(instances, nginx)


def migrate(directory: Path, config: dict[str, Any]) -> None:
    """`postgrest-auth migrate` once, as an operator (or compose's one-shot service) runs it."""
    config_file = directory / "migrate.json"
    config_file.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTGREST_AUTH_")}
    result = subprocess.run(
        [sys.executable, "-m", "postgrest_auth", "migrate", "--config", str(config_file)],
        cwd=directory,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def forwarded_for(address: str) -> dict[str, str]:
    """The header a client's own front proxy would add: the address rate limits key on."""
    return {"X-Forwarded-For": address}


def wait_quiet(predicate: Any, quiet: float, timeout: float) -> None:
    """predicate() true and staying true for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    since: float | None = None
    while True:
        now = time.monotonic()
        if predicate():
            since = since or now
            if now - since >= quiet:
                return
        else:
            since = None
        if now > deadline:
            raise AssertionError(f"not quiet for {quiet} s within {timeout} s")
        time.sleep(0.05)
