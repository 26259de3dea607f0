"""Several worker processes on one port, stopped cleanly.

uvicorn's supervisor binds the port once and hands the socket to each worker. At SIGTERM it
used to keep its own copy open until every worker had exited: the kernel went on accepting
connections that no process would ever read, and reset them when the supervisor exited, too
late for a proxy to try another instance. Here the supervisor closes its copy at the signal
itself; each worker closes its own as its stop begins (uvicorn), so from then on new
connections are refused at once (ECONNREFUSED), while accepted ones are answered.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

from uvicorn.config import Config
from uvicorn.supervisors.multiprocess import Multiprocess

from .draining import STOP_SIGNALS
from .observability.multiprocess import forget_process

logger = logging.getLogger("uvicorn.error")


class Supervisor(Multiprocess):
    """uvicorn's Multiprocess, but the listening socket closes at the stop signal and the
    workers are waited for at most `stop_within` seconds from it, then killed."""

    def __init__(self, config: Config, sockets: list[socket.socket], stop_within: float) -> None:
        super().__init__(config, sockets)
        self.stop_within = stop_within
        self._stop_began: float | None = None
        self.failed = False  # a worker failed to start: the exit status says so
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_stop)

    def _on_stop(self, sig: int, frame: FrameType | None) -> None:
        # In the signal handler itself: closing a file descriptor is safe here, and every
        # moment the socket stays open queues connections nobody will answer.
        if self._stop_began is None:
            self._stop_began = time.monotonic()
            for sock in self.sockets:
                sock.close()
        self.signal_queue.append(sig)  # the loop then passes the stop on to the workers

    def run(self) -> None:
        """uvicorn's loop, looking at signals every 0.1 s rather than 0.5 s: the workers learn
        of the stop sooner, so they stop listening and finish within the budget."""
        logger.info("Started parent process [%s]", os.getpid())
        self._unless_stopped(self.init_processes)
        while not self.should_exit.wait(0.1):
            self.handle_signals()
            self.keep_subprocess_alive()
        self.terminate_all()
        self.join_all()
        logger.info("Stopping parent process [%s]", os.getpid())

    def keep_subprocess_alive(self) -> None:
        """Replace dead workers, but never once stopping: the socket a replacement would
        inherit is closed, and a worker that ended is meant to."""
        if self._stop_began is None:
            before = {process.pid for process in self.processes}
            self._unless_stopped(super().keep_subprocess_alive)
            # A replaced worker died without its lifespan's end (OOM, SIGKILL, hung)
            for pid in before - {process.pid for process in self.processes}:
                if pid is not None:
                    forget_process(pid)
            # uvicorn stops the parent when a worker fails to start; say so in the exit status
            self.failed = self.should_exit.is_set() and self._stop_began is None

    def _unless_stopped(self, start_workers: Callable[[], None]) -> None:
        """Start workers; if the stop signal comes meanwhile, the ones not yet started cannot
        inherit the closed socket (multiprocessing: ValueError, bad value(s) in fds_to_keep)
        and are not wanted anyway."""
        try:
            start_workers()
        except (OSError, ValueError):
            if self._stop_began is None:
                raise

    def join_all(self) -> None:
        """Wait for the workers until `stop_within` seconds after the signal, then kill the
        rest: the whole stop is bounded even if a request or a lifespan never ends."""
        deadline = (self._stop_began or time.monotonic()) + self.stop_within
        for process in self.processes:
            process.process.join(max(deadline - time.monotonic(), 0.0))
            if process.process.exitcode is None:
                logger.error(
                    "Worker [%s] still running %.0f s after the stop signal; killing it",
                    process.pid,
                    self.stop_within,
                )
                process.kill()
                process.process.join()
