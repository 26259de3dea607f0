"""Sends the outbox: woken by NOTIFY or polling, retried with exponential backoff, shared by
instances.

NOTIFY needs a session of its own: the worker LISTENs over `db.direct_connection_string`, past
PgBouncer. Without one it never LISTENs (through PgBouncer in transaction mode the LISTEN would
stay on a server connection lent to others, and hear nothing once the client moves) and polls
the outbox instead.

A worker claims due mail with `FOR UPDATE SKIP LOCKED` and pushes its next attempt forward as a
lease, sends it with no transaction open, then marks it sent. Mail is sent once in normal
operation; a crash between acceptance and marking sends it again after the lease (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aiosmtplib
import asyncpg

from ..config import Settings
from ..database import direct_dsn
from ..migrate import outbox_channel
from ..store import Store
from .senders import Sender, build_message
from .templates import RenderedMail

log = logging.getLogger(__name__)

# Issues a new secret for a claimed mail whose link died and renders it again (mail.relink).
Renew = Callable[[asyncpg.Record], Awaitable[RenderedMail | None]]

BATCH = 10
IDLE_POLL_SECONDS = 30.0  # a lost NOTIFY (listener reconnecting) costs at most this much delay
# Without a direct connection: mail waits at most this long, for one claim query a second per
# worker process, an index scan of outbox_due_idx (only unsent, unfailed rows) that finds nothing.
POLL_SECONDS = 1.0
# The listener's application_name, for operators reading pg_stat_activity.
LISTENER_NAME = "postgrest-auth mail listener"


class MailWorker:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        store: Store,
        sender: Sender,
        renew: Renew | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.store = store
        self.sender = sender
        self.renew = renew  # mail.relink.renew; without it, a mail whose link died is dropped
        self.lease_seconds = settings.email.timeout * 3 + 30
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._direct_dsn = direct_dsn(settings)
        self._stopping = False

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="mail-worker")

    async def stop(self, within: float | None = None) -> None:
        """Let a send in flight finish (bounded by the SMTP timeout, or `within` seconds when
        the stop has a deadline), then stop.

        Cancelling mid-send would leave that mail leased, so it would wait out the whole lease
        before any instance tried it again.
        """
        self._stopping = True
        self._wake.set()
        if within is None:
            within = self.settings.email.timeout + 5
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), within)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            except Exception as exc:  # the loop only ends by stopping; never fail a shutdown
                log.warning("mail worker ended with %s", type(exc).__name__)
        await self._close_listener()

    def retry_delay(self, attempts: int) -> float | None:
        """Seconds before the next attempt, or None once attempts are used up."""
        email = self.settings.email
        if attempts >= email.max_attempts:
            return None
        return min(email.backoff_initial * 2 ** (attempts - 1), email.backoff_max)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._ensure_listener()
                sent_any = await self.deliver_due()
                if not sent_any:
                    await self._sleep_until_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database away: keep the process, try again shortly
                log.warning("mail worker: %s; retrying in 5 s", type(exc).__name__)
                await self._close_listener()
                await self._pause(5)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once on NOTIFY or stop()."""
        self._wake.clear()
        if self._stopping or seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def deliver_due(self) -> bool:
        """Send one batch of due mail; True if there was any."""
        async with self.pool.acquire() as conn:
            batch = await self.store.claim_mail(conn, self.lease_seconds, BATCH)
        await asyncio.gather(*(self._deliver(row) for row in batch))
        return bool(batch)

    async def _deliver(self, row: asyncpg.Record) -> None:
        try:  # a mail that cannot even be built counts as a failed attempt, not a worker crash
            mail = RenderedMail(row["subject"], row["body_text"] or "", row["body_html"])
            if row["link_expired"]:  # never sent as written: a new secret, or not at all
                mail = await self._renewed(row)
                if mail is None:
                    return
            message = build_message(
                self.settings.email, row["recipient"], mail.subject, mail.text, mail.html
            )
            await self.sender.send(message)
        except Exception as exc:
            delay = None if _recipient_refused_for_good(exc) else self.retry_delay(row["attempts"])
            error = _describe(exc)
            log.warning(
                "mail %s (%s) attempt %s failed: %s; %s",
                row["id"],
                row["kind"],
                row["attempts"],
                error,
                f"retrying in {delay:g} s" if delay is not None else "giving up",
            )
            async with self.pool.acquire() as conn:
                await self.store.mark_failed_attempt(conn, row["id"], error, delay)
            return
        async with self.pool.acquire() as conn:
            await self.store.mark_sent(conn, row["id"])
        log.info("mail %s (%s) sent", row["id"], row["kind"])

    async def _renewed(self, row: asyncpg.Record) -> RenderedMail | None:
        mail = None
        if self.renew is not None:
            mail = await self.renew(row)
        else:
            async with self.pool.acquire() as conn:
                await self.store.drop_mail(conn, row["id"], "not sent: its link expired")
        if mail is None:
            log.info("mail %s (%s) not sent: its link expired", row["id"], row["kind"])
        else:
            log.info("mail %s (%s): its link expired, sending a new one", row["id"], row["kind"])
        return mail

    async def _sleep_until_due(self) -> None:
        if self._direct_dsn is None:  # no NOTIFY comes: the next claim is the poll
            await self._pause(POLL_SECONDS)
            return
        async with self.pool.acquire() as conn:
            due_in = await self.store.seconds_until_next_mail(conn)
        await self._pause(IDLE_POLL_SECONDS if due_in is None else min(due_in, IDLE_POLL_SECONDS))

    async def _ensure_listener(self) -> None:
        if self._direct_dsn is None:
            return
        if self._listener is not None and not self._listener.is_closed():
            return
        self._listener = await asyncpg.connect(
            self._direct_dsn, server_settings={"application_name": LISTENER_NAME}
        )
        await self._listener.add_listener(outbox_channel(self.settings), self._notified)
        self._listener.add_termination_listener(lambda _conn: self._wake.set())

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.close(), 2)


def _recipient_refused_for_good(exc: Exception) -> bool:
    """The server said the address does not exist (5xx to RCPT TO): retrying cannot help.

    Other failures, a refused sender or login included, are worth retrying: they are a server
    away or a setting an operator will fix.
    """
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(r.code >= 500 for r in exc.recipients)
    return isinstance(exc, aiosmtplib.SMTPRecipientRefused) and exc.code >= 500


def _describe(exc: Exception) -> str:
    """An error line for the outbox: the exception's class and text, never credentials."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{type(exc).__name__}: {exc.code} {exc.message}"[:500]
    return f"{type(exc).__name__}: {exc}"[:500]
