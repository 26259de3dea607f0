"""Mail is never lost: outbox in the causing transaction, worker with retries, real SMTP.

Every test runs the real service against real PostgreSQL and a real aiosmtpd server; SMTP
"down" is a loopback port where nothing listens, SMTP "back" is a server started on that port.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import email
import email.policy
import ipaddress
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from postgrest_auth.mail import MailTemplates, MailWorker, Outbox
from postgrest_auth.migrate import migrate, outbox_channel
from postgrest_auth.store import Store

from .support import (
    SECRET,
    Service,
    SmtpServer,
    body_text,
    free_port,
    make_settings,
    run_sql,
    wait_until,
)

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"


# -- helpers -----------------------------------------------------------------------------------


def signup(http: httpx.Client, username: str, address: str | None = None) -> httpx.Response:
    body: dict[str, str] = {"username": username, "password": PASSWORD}
    if address:
        body["email"] = address
    return http.post("/users", json=body)


def outbox(dsn: str) -> list[Any]:
    return run_sql(
        dsn,
        "select id, kind, recipient, attempts, sent_at, failed_at, last_error, body_text"
        " from auth.outbox order by id",
    )


def sent_count(dsn: str) -> int:
    return sum(1 for row in outbox(dsn) if row["sent_at"] is not None)


@pytest.fixture
def services() -> Iterator[list[Service]]:
    """Services a test starts itself; all stopped afterwards, even on failure."""
    started: list[Service] = []
    yield started
    for service in started:
        if service.thread.is_alive():
            service.stop()


@pytest.fixture
def servers() -> Iterator[list[SmtpServer]]:
    started: list[SmtpServer] = []
    yield started
    for server in started:
        server.stop()


def start(services: list[Service], settings: Any) -> Service:
    service = Service(settings).start()
    services.append(service)
    return service


def start_smtp(servers: list[SmtpServer], **kwargs: Any) -> SmtpServer:
    server = SmtpServer(**kwargs).start()
    servers.append(server)
    return server


def self_signed(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A certificate for 127.0.0.1 made here, and a server context using it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return cert_file, context


# -- SMTP down, back, restart, several instances ----------------------------------------------


def test_smtp_down_signup_is_fast_and_mail_arrives_when_smtp_returns(dsn, services, servers):
    port = free_port()  # nothing listens here yet
    settings = make_settings(dsn, port, email={"max_attempts": 100})
    service = start(services, settings)
    with service.client() as http:
        began = time.monotonic()
        r = signup(http, "alice", "alice@example.com")
        elapsed = time.monotonic() - began
        assert r.status_code == 201, r.text
        assert elapsed < settings.email.timeout / 3, f"signup took {elapsed:.2f} s with SMTP down"
        # The worker tried and failed, and the service is still up and serving.
        wait_until(lambda: outbox(dsn)[0]["attempts"] >= 2, timeout=10)
        assert outbox(dsn)[0]["last_error"], "a failed attempt records why"
        assert service.thread.is_alive()
        assert signup(http, "bob").status_code == 201

    smtp = start_smtp(servers, port=port)
    [mail] = smtp.mailbox.wait_for("alice@example.com", timeout=10)
    assert "alice" in body_text(mail)
    wait_until(lambda: sent_count(dsn) == 1)
    [row] = outbox(dsn)
    assert row["last_error"] is None and row["body_text"] is None  # bodies erased once sent


def test_hanging_smtp_server_never_slows_a_request(dsn, services, servers):
    """A server that accepts TCP but never greets: the request does not wait for it."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        settings = make_settings(dsn, port, email={"timeout": 1, "max_attempts": 100})
        service = start(services, settings)
        with service.client() as http:
            for name in ("carol", "dave"):
                began = time.monotonic()
                r = signup(http, name, f"{name}@example.com")
                assert r.status_code == 201, r.text
                assert time.monotonic() - began < 0.8, "signup waited for the SMTP server"
        wait_until(lambda: any(row["last_error"] for row in outbox(dsn)), timeout=10)
        assert "Timeout" in " ".join(row["last_error"] or "" for row in outbox(dsn))


def test_mail_queued_before_a_restart_is_delivered_after_it(dsn, services, servers):
    port = free_port()
    settings = make_settings(dsn, port, email={"max_attempts": 100})
    first = start(services, settings)
    with first.client() as http:
        assert signup(http, "erin", "erin@example.com").status_code == 201
    wait_until(lambda: outbox(dsn)[0]["attempts"] >= 1)
    first.stop()
    [row] = outbox(dsn)
    assert row["sent_at"] is None and row["failed_at"] is None

    smtp = start_smtp(servers, port=port)
    start(services, settings)  # a new process on the same database
    smtp.mailbox.wait_for("erin@example.com", timeout=10)
    wait_until(lambda: sent_count(dsn) == 1)
    assert len(smtp.mailbox.messages) == 1


def test_two_instances_deliver_each_of_20_mails_exactly_once(dsn, services, servers):
    port = free_port()
    settings = make_settings(dsn, port, email={"max_attempts": 1000})
    instances = [start(services, settings), start(services, settings)]
    clients = [instance.client() for instance in instances]
    try:
        for i in range(20):
            r = signup(clients[i % 2], f"user{i}", f"user{i}@example.com")
            assert r.status_code == 201, r.text
    finally:
        for http in clients:
            http.close()
    assert len(outbox(dsn)) == 20

    smtp = start_smtp(servers, port=port)
    wait_until(lambda: sent_count(dsn) == 20, timeout=20)
    # mark_sent follows acceptance, so every delivery has happened by now.
    messages = list(smtp.mailbox.messages)
    recipients = sorted(m["To"] for m in messages)
    assert recipients == sorted(f"user{i}@example.com" for i in range(20))
    assert len({m["Message-ID"] for m in messages}) == 20
    assert all(row["failed_at"] is None for row in outbox(dsn))


@pytest.mark.parametrize("direct", ["refused", "silent"])
def test_a_broken_direct_connection_never_stops_mail(dsn, services, servers, caplog, direct):
    """db.direct_connection_string refused at once, or at a host that accepts TCP and never
    answers: mail still goes out within seconds, by polling, with one warning that names the
    setting and not what it holds."""
    caplog.set_level(logging.DEBUG, logger="postgrest_auth.mail.worker")
    smtp = start_smtp(servers)
    start(services, make_settings(dsn, smtp.port)).stop()  # the schema, migrated
    password = "Direct-pass-" + os.urandom(4).hex()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1] if direct == "silent" else free_port()
        broken = f"postgresql://listener:{password}@127.0.0.1:{port}/postgres"
        settings = make_settings(
            dsn,
            smtp.port,
            db={"direct_connection_string": broken, "auto_migrate": False, "acquire_timeout": 1},
        )
        service = start(services, settings)

        def warnings() -> list[str]:
            return [
                r.getMessage()
                for r in caplog.records
                if r.name == "postgrest_auth.mail.worker" and r.levelno >= logging.WARNING
            ]

        with service.client() as http:
            began = time.monotonic()
            assert signup(http, "mia", "mia@example.com").status_code == 201
            smtp.mailbox.wait_for("mia@example.com", timeout=4)
            assert time.monotonic() - began < 4
            wait_until(lambda: warnings(), timeout=5)  # the first try failed (1 s when silent)
            time.sleep(3.5)  # tries again after 1 s, 2 s: failing, still no second warning
            began = time.monotonic()
            assert signup(http, "ned", "ned@example.com").status_code == 201
            smtp.mailbox.wait_for("ned@example.com", timeout=4)
            assert time.monotonic() - began < 4
    [warning] = warnings()
    assert "db.direct_connection_string" in warning, warning
    ours = [r for r in caplog.records if r.name == "postgrest_auth.mail.worker"]
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in ours)
    assert password not in logged and broken not in logged and str(port) not in logged
    assert "listener still down" in logged  # it did try again
    wait_until(lambda: sent_count(dsn) == 2)


# -- transactions ------------------------------------------------------------------------------


def test_failed_signup_queues_nothing(dsn, smtp, service):
    with service.client() as http:
        assert signup(http, "frank", "frank@example.com").status_code == 201
        before = len(outbox(dsn))
        assert before == 1
        r = signup(http, "FRANK", "other@example.com")  # usernames are unique without case
        assert r.status_code == 409, r.text
        r = signup(http, "grace", "frank@example.com")  # so are emails
        assert r.status_code == 409, r.text
    assert len(outbox(dsn)) == before
    smtp.mailbox.wait_for("frank@example.com")
    assert smtp.mailbox.to("other@example.com") == []


def test_rolled_back_transaction_enqueues_nothing_and_wakes_nobody(dsn):
    settings = make_settings(dsn)

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        listener = await asyncpg.connect(dsn)
        notes: list[str] = []
        try:
            await migrate(conn, settings)
            queue = Outbox(settings, Store(settings), MailTemplates())
            channel = outbox_channel(settings)
            arrived = asyncio.Event()

            def note(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                notes.append(payload)
                arrived.set()

            await listener.add_listener(channel, note)

            async def until(expected: list[str]) -> None:
                async with asyncio.timeout(10):
                    while len(notes) < len(expected):
                        arrived.clear()
                        await arrived.wait()
                assert notes == expected

            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    await queue.enqueue(conn, "welcome", "gone@example.com", username="gone")
                    raise RuntimeError("the change fails after the mail was queued")
            assert await conn.fetchval("select count(*) from auth.outbox") == 0
            # A listener gets notifications in commit order: one that had come from the
            # rolled-back transaction (or from a side connection of it) would precede this marker.
            await conn.execute("select pg_notify($1, 'marker')", channel)
            await until(["marker"])

            async with conn.transaction():
                await queue.enqueue(conn, "welcome", "kept@example.com", username="kept")
            await until(["marker", ""])  # a committed mail wakes the workers
            assert await conn.fetchval("select recipient from auth.outbox") == "kept@example.com"
        finally:
            await listener.close()
            await conn.close()

    asyncio.run(go())


# -- SMTP features: STARTTLS, implicit TLS, AUTH ----------------------------------------------


def test_starttls_with_a_self_signed_certificate_and_ca_file(dsn, tmp_path, services, servers):
    cert, context = self_signed(tmp_path)
    smtp = start_smtp(servers, require_starttls=True, tls_context=context)
    settings = make_settings(dsn, smtp.port, email={"starttls": True, "ca_file": str(cert)})
    with start(services, settings).client() as http:
        assert signup(http, "heidi", "heidi@example.com").status_code == 201
    smtp.mailbox.wait_for("heidi@example.com")


def test_starttls_refuses_an_unknown_certificate(dsn, tmp_path, services, servers):
    _, context = self_signed(tmp_path)
    smtp = start_smtp(servers, require_starttls=True, tls_context=context)
    settings = make_settings(dsn, smtp.port, email={"starttls": True, "max_attempts": 100})
    with start(services, settings).client() as http:
        assert signup(http, "ivan", "ivan@example.com").status_code == 201
    wait_until(lambda: outbox(dsn)[0]["last_error"])
    assert "CERTIFICATE" in outbox(dsn)[0]["last_error"].upper()
    assert smtp.mailbox.messages == []


def test_implicit_tls_secure_true(dsn, tmp_path, services, servers):
    cert, context = self_signed(tmp_path)
    smtp = start_smtp(servers, ssl_context=context)
    settings = make_settings(dsn, smtp.port, email={"secure": True, "ca_file": str(cert)})
    with start(services, settings).client() as http:
        assert signup(http, "judy", "judy@example.com").status_code == 201
    smtp.mailbox.wait_for("judy@example.com")


class Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self.expected = (user.encode(), password.encode())
        self.logins: list[bytes] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        if isinstance(auth_data, LoginPassword):
            self.logins.append(auth_data.login)
            if (auth_data.login, auth_data.password) == self.expected:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_smtp_auth_delivers_and_never_logs_the_password(dsn, services, servers, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "s3cret-Mail-Pass-" + os.urandom(4).hex()
    authenticator = Authenticator("mailer", secret)
    smtp = start_smtp(
        servers, authenticator=authenticator, auth_required=True, auth_require_tls=False
    )
    good = make_settings(
        dsn, smtp.port, email={"auth": {"user": "mailer", "pass": secret}, "max_attempts": 100}
    )
    first = start(services, good)
    with first.client() as http:
        assert signup(http, "kim", "kim@example.com").status_code == 201
    smtp.mailbox.wait_for("kim@example.com")
    assert b"mailer" in authenticator.logins
    first.stop()  # from here on only the instance with the wrong password sends

    # A wrong password: refused, recorded, and still nowhere in the outbox or the logs.
    wrong = "Wrong-pass-" + os.urandom(4).hex()
    bad = make_settings(
        dsn, smtp.port, email={"auth": {"user": "mailer", "pass": wrong}, "max_attempts": 100}
    )
    with start(services, bad).client() as http:
        assert signup(http, "leo", "leo@example.com").status_code == 201
    wait_until(lambda: any(row["last_error"] for row in outbox(dsn)))
    errors = " ".join(row["last_error"] or "" for row in outbox(dsn))
    assert "SMTPAuthenticationError: 535" in errors, errors
    assert smtp.mailbox.to("leo@example.com") == []

    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]  # not aiosmtpd's own
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in ours)
    for password in (secret, wrong):
        encoded = base64.b64encode(f"\0mailer\0{password}".encode()).decode()
        for text in (errors, logged):
            assert password not in text and encoded not in text
    assert any("mail" in r.name for r in ours), "the worker's log was captured"


# -- templates and the file backend ------------------------------------------------------------


def test_template_override_directory_with_html_part(dsn, tmp_path, smtp, services):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "welcome.txt").write_text(
        "Subject: Custom hello $username from $app_name\n\nPlain body for $username.\n"
    )
    (templates / "welcome.html").write_text("<p>Hello <b>$username</b></p>\n")
    settings = make_settings(
        dsn, smtp.port, app_name="Theories", email={"templates_dir": str(templates)}
    )
    with start(services, settings).client() as http:
        assert signup(http, "mallory", "mallory@example.com").status_code == 201
        assert http.post("/forgot_password", json={"username": "mallory"}).status_code == 200
    [welcome] = smtp.mailbox.wait_for("mallory@example.com", count=2)[:1]
    assert welcome["Subject"] == "Custom hello mallory from Theories"
    assert welcome.get_content_type() == "multipart/alternative"
    assert "Plain body for mallory." in body_text(welcome)
    html = welcome.get_body(preferencelist=("html",))
    assert html is not None and "<b>mallory</b>" in html.get_content()
    # Kinds without an override keep the shipped template, plain text only.
    reset = next(m for m in smtp.mailbox.to("mallory@example.com") if m is not welcome)
    assert reset["Subject"] == "Reset your Theories password"
    assert reset.get_content_type() == "text/plain"


def test_file_backend_writes_parseable_eml_files(dsn, tmp_path, services):
    directory = tmp_path / "mail"
    settings = make_settings(
        dsn, email={"backend": "file", "directory": str(directory), "from": "Auth <a@x.test>"}
    )
    with start(services, settings).client() as http:
        assert signup(http, "nina", "nina@example.com").status_code == 201
        assert signup(http, "oscar", "oscar@example.com").status_code == 201
    files = wait_until(lambda: len(found := list(directory.glob("*.eml"))) == 2 and found)
    assert not list(directory.glob(".*.tmp")), "no partial files left behind"
    parsed = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]
    assert sorted(m["To"] for m in parsed) == ["nina@example.com", "oscar@example.com"]
    for message in parsed:
        assert message["From"] == "Auth <a@x.test>"
        assert message["Subject"].startswith("Welcome to")
        assert message["Message-ID"] and message["Date"]
    wait_until(lambda: sent_count(dsn) == 2)


# -- operations: the CLI -----------------------------------------------------------------------


def cli(config: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTGREST_AUTH_")}
    done = subprocess.run(
        [sys.executable, "-m", "postgrest_auth", "mail", *args, "--config", str(config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_mail_status_and_retry_cli(dsn, tmp_path, services, servers):
    port = free_port()
    settings = make_settings(dsn, port, email={"max_attempts": 1})
    first = start(services, settings)
    with first.client() as http:
        assert signup(http, "peggy", "peggy@example.com").status_code == 201
    wait_until(lambda: outbox(dsn)[0]["failed_at"] is not None)
    first.stop()

    config = tmp_path / "postgrest-auth.json"
    config.write_text(json.dumps({"secret": SECRET, "db": {"connection_string": dsn}}))
    status = cli(config, "status")
    assert "pending: 0" in status and "sent: 0" in status and "failed: 1" in status, status
    assert "last error: SMTP" in status or "last error: Connection" in status, status

    assert cli(config, "retry").startswith("1 failed mail queued again")
    status = cli(config, "status")
    assert "pending: 1" in status and "failed: 0" in status, status

    smtp = start_smtp(servers, port=port)
    start(services, settings)
    smtp.mailbox.wait_for("peggy@example.com")
    wait_until(lambda: "sent: 1" in cli(config, "status"), timeout=10, interval=0.2)


# -- worker policy (no I/O) --------------------------------------------------------------------


def test_backoff_doubles_up_to_the_maximum_then_gives_up():
    settings = make_settings(
        "postgresql://nobody@127.0.0.1/none",
        email={"backoff_initial": 5, "backoff_max": 60, "max_attempts": 6},
    )
    worker = MailWorker(settings, None, None, None)  # type: ignore[arg-type]
    assert [worker.retry_delay(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, None]
