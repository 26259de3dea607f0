"""A service run as its operators run it: `python -m postgrest_auth` in a process of its own,
its whole output (stdout and stderr) kept in a file to read afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .support import ServiceProcess


class Served(ServiceProcess):
    """Started at once, with a TMPDIR of its own: where the metrics directory is made."""

    def __init__(self, tmp_path: Path, settings: dict[str, Any]) -> None:
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir()
        super().__init__(tmp_path, settings, env={"TMPDIR": str(self.tmp)})
        self.start()

    def metrics_directory(self) -> Path:
        [directory] = self.tmp.glob("postgrest-auth-metrics-*")
        return directory
