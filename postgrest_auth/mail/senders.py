"""Where mail goes: an SMTP server, the console (development) or `.eml` files."""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Protocol

import aiosmtplib

from ..config import Email

log = logging.getLogger(__name__)


class Sender(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Return only once the mail is accepted; raise otherwise."""


def build_message(
    settings: Email, recipient: str, subject: str, text: str, html: str | None
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.from_
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    # The domain of the sender's address, also for "Name <user@domain>".
    domain = parseaddr(settings.from_)[1].rpartition("@")[2]
    message["Message-ID"] = make_msgid(domain=domain or None)
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    return message


class SmtpSender:
    """`secure` is implicit TLS (port 465) as in the original; STARTTLS when offered or asked."""

    def __init__(self, settings: Email) -> None:
        self.settings = settings
        self.tls_context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
        if not settings.validate_certs:
            self.tls_context.check_hostname = False
            self.tls_context.verify_mode = ssl.CERT_NONE

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        await aiosmtplib.send(
            message,
            hostname=s.host,
            port=s.port,
            use_tls=s.secure,
            start_tls=None if s.secure else s.starttls,
            username=s.auth.user if s.auth else None,
            password=s.auth.password.get_secret_value() if s.auth else None,
            timeout=s.timeout,
            tls_context=self.tls_context,
        )


class ConsoleSender:
    """Prints each mail to standard output, for `postgrest-auth --dev`."""

    async def send(self, message: EmailMessage) -> None:
        sys.stdout.write(console_text(message))
        sys.stdout.flush()


def console_text(message: EmailMessage) -> str:
    """A mail as a developer reads it: the headers that matter and the decoded text. The wire
    form (quoted-printable) would cut a long token with `=` soft breaks and turn trailing
    spaces into `=20`, so a token copied from the terminal would not work.

    The HTML part is shown only when there is no plain one, decoded but otherwise as it is:
    stripping its tags would also strip the links' `href`, which hold the token."""
    lines = ["----- mail -----"]
    lines += [
        f"{name}: {message[name]}" for name in ("From", "To", "Subject", "Date") if name in message
    ]
    part = message.get_body(preferencelist=("plain",)) or message.get_body(preferencelist=("html",))
    text = part.get_content() if part is not None else "(no text part)"
    lines += ["", text.rstrip("\n"), "----- end of mail -----"]
    return "\n".join(lines) + "\n"


class FileSender:
    """One `.eml` file per mail, written atomically, for demos and tests."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._write, message)  # disk I/O stays off the event loop

    def _write(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = message["Message-ID"].strip("<>").replace("/", "_")
        partial = self.directory / f".{name}.tmp"
        partial.write_bytes(message.as_bytes())
        partial.rename(self.directory / f"{name}.eml")


def make_sender(settings: Email) -> Sender:
    if settings.backend == "console":
        return ConsoleSender()
    if settings.backend == "file":
        return FileSender(settings.directory)
    return SmtpSender(settings)
