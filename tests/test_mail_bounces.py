"""A recipient the SMTP server says does not exist is given up at once; a server away is not."""

from typing import Any

from aiosmtpd.controller import Controller

from .support import Mailbox, Service, free_port, make_settings, run_sql, sign_up, wait_until


class RefusesOneAddress(Mailbox):
    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def _mail_to(dsn: str, address: str) -> Any:
    rows = run_sql(
        dsn,
        "select attempts, failed_at, sent_at, last_error from auth.outbox where recipient = $1",
        address,
    )
    return rows[0] if rows else None


def test_a_refused_recipient_fails_at_once_and_others_still_go(dsn):
    mailbox = RefusesOneAddress()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    service = Service(make_settings(dsn, port, email={"max_attempts": 30})).start()
    try:
        with service.client() as http:
            sign_up(http, "bounced", "nobody@example.com")
            sign_up(http, "delivered", "somebody@example.com")
        mailbox.wait_for("somebody@example.com")
        refused = wait_until(
            lambda: (m := _mail_to(dsn, "nobody@example.com")) and m["failed_at"] and m
        )
        assert refused["attempts"] == 1  # not 30 attempts over a day
        assert refused["sent_at"] is None
        assert "550" in refused["last_error"] and "no such mailbox" in refused["last_error"]
    finally:
        service.stop()
        controller.stop()


def test_an_unreachable_server_is_retried(dsn):
    port = free_port()  # nothing listens here
    service = Service(make_settings(dsn, port, email={"max_attempts": 30})).start()
    try:
        with service.client() as http:
            sign_up(http, "waiting", "waiting@example.com")
        wait_until(lambda: (m := _mail_to(dsn, "waiting@example.com")) and m["attempts"] >= 2)
        mail = _mail_to(dsn, "waiting@example.com")
        assert mail["failed_at"] is None and mail["sent_at"] is None
    finally:
        service.stop()
