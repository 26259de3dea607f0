"""A clean stop: at SIGTERM the service refuses new connections at once (so a proxy tries
another instance), answers every request it accepted (bcrypt included) and exits within
`shutdown_timeout`, with one worker or several. `/auth/ready` stops saying ready meanwhile."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import asyncpg
import httpx
from aiosmtpd.controller import Controller

from .support import SECRET, Mailbox, Service, ServiceProcess, free_port, run_sql, wait_until

PASSWORD = "correct horse battery"
SIGN_INS = 32
# A reset this soon after connecting is the last-close race (see Probes.reset_at_once).
RACE_SECONDS = 0.05
SHUTDOWN_TIMEOUT = 60.0  # bcrypt on a loaded machine: 32 sign-ins took up to 18 s here


class Running(ServiceProcess):
    """Started at once; up when /auth/ready answers."""

    def __init__(
        self,
        tmp_path: Path,
        dsn: str,
        workers: int,
        email: dict[str, object] | None = None,
        shutdown_timeout: float = SHUTDOWN_TIMEOUT,
    ) -> None:
        config = {
            "secret": SECRET,
            "workers": workers,
            "log_level": "warning",
            "shutdown_timeout": shutdown_timeout,
            "db": {"connection_string": dsn, "pool": {"min": 1, "max": 8}},
            "email": email or {"backend": "console"},
            "passwords": {"bcrypt_rounds": 10},  # sign-ins that take a while
            "rate_limit": {
                "per_address": {"requests": 100000, "window": 60},
                "per_account": {"requests": 100000, "window": 60},
            },
        }
        super().__init__(tmp_path, config)
        self.base = self.url + "/auth"
        self.start()

    def wait_up(self, path: str = "/auth/ready", timeout: float = 60) -> Self:
        return super().wait_up(path, timeout)


def _tcp_sockets(port: int) -> list[tuple[str, int]]:
    """(state, unread bytes) of the IPv4 sockets whose local port is `port`, from
    /proc/net/tcp. A listener's unread count is its accept queue: connections the kernel
    completed that no process has taken yet."""
    rows = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local_port = int(fields[1].split(":")[1], 16)
            if local_port == port:
                rx_queue = int(fields[4].split(":")[1], 16)
                rows.append((fields[3], rx_queue))
    return rows


def _all_taken_and_read(port: int, connections: int) -> bool:
    """Every client connection was accepted by a worker, which has read its request."""
    rows = _tcp_sockets(port)
    established = [rx for state, rx in rows if state == "01"]
    listening = [rx for state, rx in rows if state == "0A"]
    return len(established) >= connections and not any(established) and not any(listening)


@dataclass
class Probes:
    """New connections tried after the signal, every few milliseconds until told to stop."""

    port: int
    refused: list[float] = field(default_factory=list)  # seconds each refusal took
    answered: list[int] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # accepted, then cut without an answer
    # Reset the instant it connected: its handshake completed as the last process closed the
    # listening socket (the kernel resets what nobody will accept). Rare; a client learns at
    # once, as from a refusal, unlike the resets seconds later that closing the socket fixed.
    reset_at_once: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                    sock.sendall(
                        b"GET /auth/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                    )
                    reply = b""
                    while chunk := sock.recv(65536):
                        reply += chunk
                if reply.startswith(b"HTTP/1.1 "):
                    self.answered.append(int(reply[9:12]))
                else:
                    self.broken.append(
                        f"closed without an answer after {time.monotonic() - began:.2f} s"
                    )
            except ConnectionRefusedError:
                self.refused.append(time.monotonic() - began)
            except OSError as exc:
                took = time.monotonic() - began
                if isinstance(exc, ConnectionResetError) and took < RACE_SECONDS:
                    self.reset_at_once.append(took)
                else:
                    self.broken.append(f"{type(exc).__name__} after {took:.2f} s")
            time.sleep(0.01)


def _sign_in_under_stop(
    tmp_path: Path, dsn: str, workers: int, *, to_group: bool = False
) -> dict[str, object]:
    service = Running(tmp_path, dsn, workers)
    try:
        service.wait_up()
        with httpx.Client(base_url=service.base, timeout=30) as http:
            for n in range(4):
                r = http.post("/users", json={"username": f"drain{n}", "password": PASSWORD})
                assert r.status_code == 201, r.text
        # A keep-alive connection opened before the signal, idle at it.
        kept = httpx.Client(base_url=service.base, timeout=10)
        assert kept.get("/ready").status_code == 200

        answers: list[int | str] = []
        lock = threading.Lock()
        clients = [httpx.Client(base_url=service.base, timeout=60) for _ in range(SIGN_INS)]
        together = threading.Barrier(SIGN_INS)

        def sign_in(n: int) -> None:
            together.wait()
            try:
                r = clients[n].post(
                    "/refresh_token", json={"username": f"drain{n % 4}", "password": PASSWORD}
                )
                outcome: int | str = r.status_code
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            with lock:
                answers.append(outcome)

        threads = [threading.Thread(target=sign_in, args=(n,)) for n in range(SIGN_INS)]
        for thread in threads:
            thread.start()
        # Accepted: every connection taken from the kernel by a worker, its request read.
        try:
            wait_until(
                lambda: _all_taken_and_read(service.port, SIGN_INS), timeout=20, interval=0.002
            )
        except AssertionError:
            raise AssertionError((answers, _tcp_sockets(service.port))) from None
        with lock:
            assert len(answers) < SIGN_INS, "the sign-ins were too quick to be under way"

        assert kept.get("/ready").status_code == 200  # fresh: not closed as idle yet
        probes = Probes(service.port)
        prober = threading.Thread(target=probes.run)
        signalled = time.monotonic()
        if to_group:  # as systemd does (KillMode=control-group), and Ctrl-C (SIGINT)
            os.killpg(service.process.pid, signal.SIGTERM)
        else:  # as `docker stop` and Kubernetes do: to the main process only
            service.process.send_signal(signal.SIGTERM)
        prober.start()
        if workers == 1:
            time.sleep(0.05)
            try:  # between the signal and the close of idle connections: not ready any more
                ready_during_drain: int | str = kept.get("/ready").status_code
            except httpx.HTTPError as exc:  # uvicorn closed the idle connection first
                ready_during_drain = type(exc).__name__
        else:
            ready_during_drain = "not asked"
        for thread in threads:
            thread.join(timeout=60)
        in_flight_done = time.monotonic() - signalled
        refused_in_flight = len(probes.refused)
        service.process.wait(timeout=SHUTDOWN_TIMEOUT + 10)
        exited = time.monotonic() - signalled
        probes.stop.set()
        prober.join(timeout=15)
        kept.close()
        for client in clients:
            client.close()
        return {
            "answers": answers,
            "probes": probes,
            "refused_while_requests_ran": refused_in_flight,
            "requests_done_after": in_flight_done,
            "exited_after": exited,
            "exit_code": service.process.returncode,
            "ready_during_drain": ready_during_drain,
            "log": service.log.read_text(),
        }
    finally:
        service.kill()


def _check(result: dict[str, object]) -> None:
    answers = result["answers"]
    probes = result["probes"]
    assert isinstance(answers, list) and isinstance(probes, Probes)
    print(
        f"\naccepted {SIGN_INS}, answered 200: {answers.count(200)}; probes after the signal:"
        f" refused {len(probes.refused)} (slowest {max(probes.refused, default=0):.3f} s),"
        f" answered {len(probes.answered)}, broken {len(probes.broken)},"
        f" reset at once {len(probes.reset_at_once)};"
        f" refused while accepted requests ran: {result['refused_while_requests_ran']};"
        f" requests done {result['requests_done_after']:.2f} s, exit {result['exited_after']:.2f} s"
        f" after the signal; /ready during the drain: {result['ready_during_drain']}"
    )
    assert answers == [200] * SIGN_INS, (answers, str(result["log"])[-3000:])
    # Connections tried after the signal: refused at once, never accepted and then cut.
    assert probes.broken == [], probes.broken
    assert len(probes.reset_at_once) <= 2, probes.reset_at_once
    assert probes.refused, "no connection was refused after the signal"
    assert max(probes.refused) < 0.5
    assert result["refused_while_requests_ran"] >= 1, (
        "the port still took connections while draining"
    )
    assert result["exited_after"] < SHUTDOWN_TIMEOUT
    assert result["exit_code"] in (0, -signal.SIGTERM), result["exit_code"]
    assert "Traceback" not in str(result["log"]), str(result["log"])[-3000:]


def test_sigterm_with_two_workers(tmp_path: Path, dsn: str) -> None:
    _check(_sign_in_under_stop(tmp_path, dsn, workers=2))


def test_sigterm_to_the_whole_group_with_two_workers(tmp_path: Path, dsn: str) -> None:
    """The workers get the signal twice (directly, then from the supervisor): still a drain."""
    _check(_sign_in_under_stop(tmp_path, dsn, workers=2, to_group=True))


def test_sigterm_with_one_worker(tmp_path: Path, dsn: str) -> None:
    result = _sign_in_under_stop(tmp_path, dsn, workers=1)
    _check(result)
    # The idle keep-alive connection: answered 503, or closed by the stop; never "ready".
    assert result["ready_during_drain"] != 200


def test_ready_and_health(service: Service, dsn: str) -> None:
    """Readiness says whether to send traffic here; liveness only that the process answers."""
    with service.client() as http:
        r = http.get("/health")
        assert r.status_code == 200 and r.json() == {"status": "ok", "database": "up"}
        r = http.get("/ready")
        assert r.status_code == 200, r.text
        assert r.json() == {
            "status": "ready",
            "database": "up",
            "migrations": "current",
            "draining": False,
        }
        # A database behind this version's migrations: not ready, still alive.
        last = run_sql(dsn, "select max(name) from auth.schema_migrations where name ~ '^[0-9]'")
        run_sql(dsn, "delete from auth.schema_migrations where name = $1", last[0][0])
        r = http.get("/ready")
        assert r.status_code == 503 and r.headers["Retry-After"].isdigit(), r.text
        assert r.json()["migrations"] == "behind" and r.json()["database"] == "up"
        assert http.get("/health").status_code == 200

        # Draining (what SIGTERM begins): not ready, whatever else holds.
        service.server.config.app.state.drain.begin()
        r = http.get("/ready")
        assert r.status_code == 503 and r.json()["draining"] is True, r.text
        assert int(r.headers["Retry-After"]) >= 1
        assert http.get("/health").json() == {"status": "ok", "database": "up"}
        # GoTrue's health keeps GoTrue's shape.
        r = http.get("/v1/health")
        assert r.status_code == 200 and r.json()["name"] == "postgrest-auth"


class SlowMailbox(Mailbox):
    """An SMTP server that takes `seconds` to accept each message."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.receiving = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.receiving.set()
        await asyncio.sleep(self.seconds)
        return await super().handle_DATA(server, session, envelope)


def test_sigterm_lets_the_mail_being_sent_finish(tmp_path: Path, dsn: str) -> None:
    """The mail worker stops after the mail it is sending: it is delivered and marked sent,
    not left leased for another instance to send again later."""
    mailbox = SlowMailbox(seconds=3)
    smtp_port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    email = {"host": "127.0.0.1", "port": smtp_port, "starttls": False, "timeout": 10}
    service = Running(tmp_path, dsn, workers=1, email=email)
    try:
        service.wait_up()
        r = httpx.post(
            service.base + "/users",
            json={"username": "mailed", "password": PASSWORD, "email": "mailed@example.com"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        assert mailbox.receiving.wait(timeout=30), "the mail never reached the SMTP server"
        signalled = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        service.process.wait(timeout=SHUTDOWN_TIMEOUT + 10)
        exited = time.monotonic() - signalled
        print(f"\nexit {exited:.2f} s after the signal, the mail (3 s at the SMTP server) sent")
        assert len(mailbox.to("mailed@example.com")) == 1
        rows = run_sql(dsn, "select sent_at is not null as sent from auth.outbox")
        assert [row["sent"] for row in rows] == [True]
        assert 2.0 < exited < SHUTDOWN_TIMEOUT
        assert "Traceback" not in service.log.read_text(), service.log.read_text()[-3000:]
    finally:
        service.kill()
        controller.stop()


def test_a_request_that_outlives_shutdown_timeout_does_not_hold_the_stop(
    tmp_path: Path, dsn: str
) -> None:
    """A request stuck (here on a lock) is cut when the budget runs out: the stop still ends
    within `shutdown_timeout`."""
    service = Running(tmp_path, dsn, workers=2, shutdown_timeout=4)
    outcome: list[int | str] = []
    try:
        service.wait_up()
        r = httpx.post(
            service.base + "/users", json={"username": "stuck", "password": PASSWORD}, timeout=30
        )
        assert r.status_code == 201, r.text

        async def scenario() -> float:
            locker = await asyncpg.connect(dsn)
            try:
                async with locker.transaction():
                    await locker.execute("lock table auth.users in access exclusive mode")
                    sign_in = threading.Thread(target=_stuck_sign_in, args=(service, outcome))
                    sign_in.start()
                    for _ in range(2000):  # until the request waits on the lock
                        if await locker.fetchval(
                            "select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
                            " and application_name = 'postgrest-auth'"
                        ):
                            break
                        await asyncio.sleep(0.01)
                    else:
                        raise AssertionError("the sign-in never came to wait on the lock")
                    signalled = time.monotonic()
                    service.process.send_signal(signal.SIGTERM)
                    await asyncio.to_thread(service.process.wait, 30)
                    return time.monotonic() - signalled
            finally:
                await locker.close()

        exited = asyncio.run(scenario())
        print(
            f"\nexit {exited:.2f} s after the signal (shutdown_timeout 4 s);"
            f" the stuck request: {outcome}"
        )
        assert service.process.poll() is not None
        # the supervisor kills what still runs at 4 s; reaping it may take a moment on a busy
        # machine (the whole file runs in about 3 s when idle)
        assert exited < 4.0 + 0.5
    finally:
        service.kill()


def _stuck_sign_in(service: Running, outcome: list[int | str]) -> None:
    try:
        r = httpx.post(
            service.base + "/refresh_token",
            json={"username": "stuck", "password": PASSWORD},
            timeout=30,
        )
        outcome.append(r.status_code)
    except httpx.HTTPError as exc:
        outcome.append(type(exc).__name__)
