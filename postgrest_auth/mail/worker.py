"""Sends the outbox: woken by NOTIFY or polling, retried with exponential backoff, shared by
instances.

NOTIFY needs a session of its own: the worker LISTENs over `db.direct_connection_string`, past
PgBouncer. Without one it never LISTENs (through PgBouncer in transaction mode the LISTEN would
stay on a server connection lent to others, and hear nothing once the client moves) and polls
the outbox instead.

The listener never holds up delivery: it connects in the background, each try bounded by
`db.acquire_timeout`; while it is down (wrong password, max_connections, a host dropping packets)
the worker polls as without a direct connection, warns once naming the setting, and tries again
with backoff (at most every LISTENER_RETRY_MAX_SECONDS).

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
# While the listener is down: its next try waits 1, 2, 4 ... s after a failure, at most this.
LISTENER_RETRY_MAX_SECONDS = 30.0


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
        self._connecting: asyncio.Task[None] | None = None  # the listener's connect in flight
        self._listener_failures = 0  # since it last connected; >0: polling, warned once
        self._next_listener_try = 0.0  # loop time
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
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connecting
        await self._close_listener()

    def retry_delay(self, attempts: int) -> float | None:
        """Seconds before the next attempt, or None once attempts are used up."""
        email = self.settings.email
        if attempts >= email.max_attempts:
            return None
        return min(email.backoff_initial * 2 ** (attempts - 1), email.backoff_max)

    async def _run(self) -> None:
        while not self._stopping:
            # Before the claim, not at the pause: a NOTIFY that comes after the claim's query
            # and before the pause must still cut the pause short.
            self._wake.clear()
            try:
                self._tend_listener()
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
        """Sleep, but wake at once on NOTIFY or stop() (or return at once: one came already)."""
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
        if not self._listening():  # no NOTIFY comes: the next claim is the poll
            await self._pause(POLL_SECONDS)
            return
        async with self.pool.acquire() as conn:
            due_in = await self.store.seconds_until_next_mail(conn)
        await self._pause(IDLE_POLL_SECONDS if due_in is None else min(due_in, IDLE_POLL_SECONDS))

    def _listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    def _tend_listener(self) -> None:
        """Start connecting the listener in the background when it is down and its next try is
        due; delivery goes on meanwhile, polling."""
        if self._direct_dsn is None or self._stopping or self._listening():
            return
        if self._connecting is not None and not self._connecting.done():
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_listener_try:
            return
        self._connecting = asyncio.create_task(self._connect_listener(), name="mail-listener")

    async def _connect_listener(self) -> None:
        await self._close_listener()  # a closed one, if any
        timeout = self.settings.db.acquire_timeout
        assert self._direct_dsn is not None
        try:
            conn = await asyncpg.connect(
                self._direct_dsn,
                timeout=timeout,
                server_settings={"application_name": LISTENER_NAME},
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._listener_down(exc)
            return
        try:
            await asyncio.wait_for(
                conn.add_listener(outbox_channel(self.settings), self._notified), timeout
            )
            conn.add_termination_listener(lambda _conn: self._wake.set())
        except BaseException as exc:
            conn.terminate()
            if isinstance(exc, Exception):
                self._listener_down(exc)
                return
            raise
        if self._stopping:
            conn.terminate()
            return
        self._listener = conn
        if self._listener_failures:
            log.info("mail worker: listening over db.direct_connection_string again")
        self._listener_failures = 0
        self._wake.set()  # a NOTIFY sent while it was down: claim now, then sleep as listening

    def _listener_down(self, exc: Exception) -> None:
        """A failed listener connect: poll meanwhile, warn once, try again with backoff."""
        self._listener_failures += 1
        delay = min(2.0 ** (self._listener_failures - 1), LISTENER_RETRY_MAX_SECONDS)
        self._next_listener_try = asyncio.get_running_loop().time() + delay
        # The exception's class only: its text may name the host or user of the secret setting.
        if self._listener_failures == 1:
            log.warning(
                "mail worker: cannot LISTEN over db.direct_connection_string (%s); polling the"
                " outbox every %g s meanwhile, trying again at most every %g s",
                type(exc).__name__,
                POLL_SECONDS,
                LISTENER_RETRY_MAX_SECONDS,
            )
        else:
            log.debug("mail worker: listener still down (%s)", type(exc).__name__)

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
