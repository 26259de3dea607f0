"""PostgreSQL restarts under load: while it is away every request answers 503 with Retry-After
within `db.acquire_timeout` (never a hang, never a 500), the process stays up, `/auth/health`
says the database is down and `/auth/ready` answers 503; once it is back the service serves
again by itself, and the mail worker delivers what waited."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from .support import (
    Service,
    ServiceProcess,
    SmtpServer,
    free_port,
    make_settings,
    service_config,
    wait_until,
)

PASSWORD = "correct horse battery"
CLIENTS = 4
ACQUIRE_TIMEOUT = 5.0
OUTAGE_SECONDS = 8.0  # longer than db.acquire_timeout, so a wait for a connection would show


class OwnPostgres:
    """A PostgreSQL of this test's own (pgserver's binaries), on a loopback TCP port, so that
    it can be stopped and started again under the running service."""

    def __init__(self) -> None:
        try:
            from pgserver._commands import POSTGRES_BIN_PATH
        except ImportError as exc:
            raise AssertionError("pgserver is not installed: run `make test`") from exc
        self.bin = POSTGRES_BIN_PATH
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pa-restart-", dir="/tmp"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.user: str | None = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: pgserver's own user
            from pgserver.utils import ensure_user_exists

            self.user = "pgserver"
            entry = ensure_user_exists(self.user)
            assert entry is not None
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "utf8")
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin / program), *args],
            check=True,
            capture_output=True,
            timeout=60,
            user=self.user,
            cwd=self.dir,
        )

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c max_connections=60"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        """As an operator's restart does: end the sessions, stop accepting."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def accepts(self) -> bool:
        async def probe() -> None:
            conn = await asyncpg.connect(self.dsn, timeout=1)
            await conn.close()

        try:
            asyncio.run(probe())
        except (OSError, asyncpg.PostgresError):
            return False
        return True

    def remove(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Answer:
    began: float
    took: float
    status: int | str  # the HTTP status, or the client error's name
    retry_after: str | None
    code: str | None


class Load:
    """Clients signing in and refreshing in a loop, each answer recorded."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(n,)) for n in range(CLIENTS)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _client(self, n: int) -> None:
        with httpx.Client(base_url=self.base, timeout=60) as http:
            while not self.stop.is_set():
                r = self._send(http, {"username": f"load{n}", "password": PASSWORD})
                if r is not None and r.status_code == 200:
                    self._send(http, {"refresh_token": r.json()["refresh_token"]})
                time.sleep(0.02)

    def _send(self, http: httpx.Client, body: dict[str, str]) -> httpx.Response | None:
        began = time.monotonic()
        response = None
        try:
            response = http.post("/refresh_token", json=body)
            status: int | str = response.status_code
            retry_after = response.headers.get("Retry-After")
            code = response.json().get("code") if response.status_code >= 400 else None
        except httpx.HTTPError as exc:
            status, retry_after, code = type(exc).__name__, None, None
        with self.lock:
            self.answers.append(Answer(began, time.monotonic() - began, status, retry_after, code))
        return response

    def between(self, start: float, end: float) -> list[Answer]:
        with self.lock:
            return [a for a in self.answers if a.began >= start and a.began + a.took <= end]


def _service(tmp_path: Path, dsn: str, smtp_port: int) -> tuple[subprocess.Popen, str, Path]:
    config = service_config(
        dsn,
        smtp_port,
        log_level="warning",
        # no direct connection: the mail worker polls, as it did through the outage before
        db={
            "direct_connection_string": None,
            "pool": {"min": 2, "max": 8},
            "acquire_timeout": ACQUIRE_TIMEOUT,
        },
        email={"backoff_initial": 0.5, "max_attempts": 1000},
        sessions={"cleanup_interval": 1},  # the janitor sweeps through the outage
    )
    service = ServiceProcess(tmp_path, config).start()
    assert service.process is not None
    return service.process, service.url + "/auth", service.log


def test_database_restart_under_load(tmp_path: Path) -> None:
    postgres = OwnPostgres()
    smtp_port = free_port()
    smtp: SmtpServer | None = None
    process = None
    try:
        postgres.start()
        process, base, log = _service(tmp_path, postgres.dsn, smtp_port)

        def up() -> bool:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(base + "/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60, interval=0.1)
        with httpx.Client(base_url=base, timeout=30) as http:
            for n in range(CLIENTS):
                r = http.post("/users", json={"username": f"load{n}", "password": PASSWORD})
                assert r.status_code == 201, r.text
            # A mail that waits through the outage: no SMTP server yet, so it is retried.
            r = http.post(
                "/users",
                json={"username": "mailed", "password": PASSWORD, "email": "mailed@example.com"},
            )
            assert r.status_code == 201, r.text

        load = Load(base)
        load.start()
        time.sleep(2)
        stopping = time.monotonic()
        postgres.stop()
        stopped = time.monotonic()
        with httpx.Client(base_url=base, timeout=30) as http:
            time.sleep(1)
            r = http.get("/health")
            assert r.status_code == 200 and r.json() == {"status": "ok", "database": "down"}
            r = http.get("/ready")
            assert r.status_code == 503 and r.headers["Retry-After"].isdigit(), r.text
            assert r.json()["database"] == "down"
        time.sleep(OUTAGE_SECONDS - 1)
        restarting = time.monotonic()
        postgres.start()
        wait_until(postgres.accepts, timeout=30, interval=0.01)
        accepting = time.monotonic()

        def first_success() -> float | None:
            done = [a for a in load.between(accepting, time.monotonic()) if a.status == 200]
            return min((a.began + a.took for a in done), default=None)

        first_ok = wait_until(first_success, timeout=30, interval=0.01)
        time.sleep(3)  # load goes on against the returned database
        load.finish()
        ended = time.monotonic()

        assert process.poll() is None, log.read_text()[-3000:]
        everything = load.between(0, ended)
        outage = load.between(stopped, restarting)
        later = [a for a in everything if a.began >= first_ok]
        print(
            f"\nanswers: {len(everything)}; during the outage {len(outage)}, slowest"
            f" {max((a.took for a in outage), default=0):.3f} s; PostgreSQL stopped in"
            f" {stopped - stopping:.2f} s; first 2xx {first_ok - accepting:.3f} s after it"
            f" accepted again; {len(later)} later answers, {sum(a.status == 200 for a in later)}"
            " of them 200"
        )
        statuses = sorted({str(a.status) for a in everything})
        assert not [a for a in everything if a.status not in (200, 503)], statuses
        assert len(outage) >= CLIENTS, "too few requests while the database was away"
        for answer in outage:
            assert answer.status == 503, answer
            assert answer.code == "database_unavailable" and answer.retry_after == "5", answer
            assert answer.took < ACQUIRE_TIMEOUT, answer
        assert first_ok - accepting < 5.0
        assert later and all(a.status == 200 for a in later), [a for a in later if a.status != 200]

        # The janitor (every second here) failed while the database was away, and sweeps again.
        def janitor_failures() -> int:
            return sum('"postgrest_auth.janitor"' in line for line in log.read_text().splitlines())

        assert janitor_failures() >= 2, log.read_text()[-3000:]
        failures = janitor_failures()
        time.sleep(2.5)
        assert janitor_failures() == failures, log.read_text()[-2000:]

        # The mail worker waited through the outage and delivers once SMTP answers.
        smtp = SmtpServer(port=smtp_port).start()
        smtp.mailbox.wait_for("mailed@example.com", timeout=30)
        with httpx.Client(base_url=base, timeout=30) as http:
            assert http.get("/ready").status_code == 200
            assert http.get("/health").json() == {"status": "ok", "database": "up"}
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        if smtp is not None:
            smtp.stop()
        postgres.remove()


async def _until_waiting_on_lock(conn: asyncpg.Connection) -> None:
    """Until one of the service's connections waits on a lock (the request holds it)."""
    for _ in range(2000):
        if await conn.fetchval(
            "select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
            " and application_name = 'postgrest-auth'"
        ):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no request came to wait on the lock")


def test_saturated_pool_answers_503_within_acquire_timeout(dsn: str, smtp: SmtpServer) -> None:
    """Every pooled connection busy (here: the one there is, waiting on a lock): the next
    request waits `db.acquire_timeout` for one, then answers 503, instead of queueing on."""
    settings = make_settings(
        dsn, smtp.port, db={"pool": {"min": 1, "max": 1}, "acquire_timeout": 1}
    )
    service = Service(settings).start()
    try:
        with service.client() as http:
            r = http.post("/users", json={"username": "held", "password": PASSWORD})
            assert r.status_code == 201, r.text

        async def scenario() -> tuple[httpx.Response, float, httpx.Response]:
            locker = await asyncpg.connect(dsn)
            try:
                async with httpx.AsyncClient(base_url=service.base, timeout=30) as http:
                    async with locker.transaction():
                        await locker.execute("lock table auth.users in access exclusive mode")
                        held = asyncio.create_task(
                            http.post(
                                "/refresh_token", json={"username": "held", "password": PASSWORD}
                            )
                        )
                        await _until_waiting_on_lock(locker)
                        began = time.monotonic()
                        waiting = await http.post(
                            "/refresh_token", json={"username": "held", "password": PASSWORD}
                        )
                        took = time.monotonic() - began
                    return waiting, took, await held
            finally:
                await locker.close()

        waiting, took, held = asyncio.run(scenario())
        print(f"\nsaturated pool: 503 after {took:.2f} s (db.acquire_timeout 1 s)")
        assert waiting.status_code == 503, waiting.text
        assert waiting.json()["code"] == "database_unavailable"
        assert waiting.headers["Retry-After"].isdigit()
        assert 1.0 <= took < 4.0
        assert held.status_code == 200, held.text  # answered once the lock went
    finally:
        service.stop()
