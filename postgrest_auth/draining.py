"""Draining: the time between a stop signal and the process's exit.

At SIGTERM (or SIGINT) uvicorn stops listening and lets the accepted requests finish; the app
needs to know too, so that `/auth/ready` stops saying ready (a balancer that still holds a
keep-alive connection moves on) and so that the lifespan's shutdown knows how much of
`shutdown_timeout` is left for the mail in flight and the work left after answers.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Of `shutdown_timeout`, what the accepted requests may take; the rest is for the mail being
# sent, the work left after answers and the pool's close.
REQUESTS_SHARE = 0.8
# Kept back from `shutdown_timeout` for the process's own exit (and, with several workers, the
# supervisor passing the signal on), so the whole stop ends within the setting.
EXIT_SECONDS = 1.0
# How long a connection accepted just before the stop may take to send its request.
FIRST_REQUEST_SECONDS = 1.0


def worker_budget(shutdown_timeout: float) -> float:
    """Seconds a serving process has from its stop signal until it must be done."""
    return max(shutdown_timeout - EXIT_SECONDS, 0.0)


def requests_budget(shutdown_timeout: float) -> float:
    """uvicorn's timeout_graceful_shutdown: how long accepted requests may still run."""
    return worker_budget(shutdown_timeout) * REQUESTS_SHARE


class Drain:
    """Whether this process is draining, and since when (monotonic seconds)."""

    def __init__(self) -> None:
        self.since: float | None = None

    @property
    def active(self) -> bool:
        return self.since is not None

    def begin(self) -> None:
        if self.since is None:
            self.since = time.monotonic()

    def seconds_left(self, budget: float) -> float:
        """What remains of `budget` counted from the signal (from now if none came)."""
        start = self.since if self.since is not None else time.monotonic()
        return max(start + budget - time.monotonic(), 0.0)

    def follow_signals(self) -> None:
        """Begin at SIGINT/SIGTERM, then hand the signal to the handler already installed
        (uvicorn's, which starts the stop). Only the main thread may install handlers; an app
        served from another thread (tests, embedding) is stopped by its owner instead."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in STOP_SIGNALS:
            previous = signal.getsignal(sig)
            if not callable(previous):  # SIG_DFL, SIG_IGN: nobody here stops gracefully
                continue
            signal.signal(sig, self._chained(previous))

    def _chained(self, previous: Any) -> Any:
        def handler(sig: int, frame: FrameType | None) -> None:
            self.begin()
            previous(sig, frame)

        return handler


class DrainingHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, but a connection accepted just before the stop, whose request
    was not read yet, gets that request answered (with `Connection: close`) instead of being
    closed at once: closed with its request unread, the kernel sends a reset, and a proxy does
    not retry a POST that was reset. Connections idle after an answer still close at once."""

    draining = False

    def shutdown(self) -> None:
        if self.cycle is not None or self.transport.is_closing():
            super().shutdown()
            return
        self.draining = True  # no request began on this connection yet
        self.loop.call_later(FIRST_REQUEST_SECONDS, self._close_if_still_silent)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.draining and self.cycle is not None:
            self.cycle.keep_alive = False

    def _close_if_still_silent(self) -> None:
        if self.cycle is None:
            self.transport.close()
