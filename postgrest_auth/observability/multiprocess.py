"""Where worker processes keep their metric values, so `GET /metrics` in any one of them
counts the requests of all.

prometheus-client picks its storage when it is first imported: PROMETHEUS_MULTIPROC_DIR must be
set before that, in the serving process, so the workers uvicorn spawns inherit it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

ENVIRONMENT = "PROMETHEUS_MULTIPROC_DIR"


def use_fresh_directory() -> str:
    """A new empty directory for this run (values of an earlier run never mix in), removed
    when the serving process exits. Honours TMPDIR (a tmpfs in a container)."""
    if "prometheus_client" in sys.modules:  # a programming error: fail where it is made
        raise RuntimeError(f"prometheus_client was imported before {ENVIRONMENT} was set")
    path = tempfile.mkdtemp(prefix="postgrest-auth-metrics-")
    os.environ[ENVIRONMENT] = path
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def forget_process(pid: int) -> None:
    """A worker that stopped, or died (the supervisor replaces it): its gauges leave the sums;
    its counters stay, they were served."""
    if os.environ.get(ENVIRONMENT):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
