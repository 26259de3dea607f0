"""Log records as one JSON object a line (`log.format: json`, the default) or as text (`--dev`).

The same configuration is handed to uvicorn (`log_config`), which applies it in every worker
process it spawns, so workers, uvicorn's own messages and the access lines share one format.
uvicorn's access log is off: the middleware writes a line per request with more in it.
"""

from __future__ import annotations

import json
import logging
import logging.config
import time
from typing import Any

from ..config import Settings
from .context import CURRENT

# Attributes every LogRecord has; anything else was passed in `extra=` and is a field.
# One encoder for every line (json.dumps with options would build one per call).
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, the request id when inside a request, and the record's
    `fields` (passed as `extra={"fields": {...}}`, as the access line does)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = CURRENT.get()
        if context is not None:
            entry["request_id"] = context.request_id
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


class TextFormatter(logging.Formatter):
    """For a person at a terminal: the request id in brackets when inside a request."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = CURRENT.get()
        return line if context is None else f"{line} [{context.request_id}]"


_second: list[Any] = [None, ""]  # the last second formatted, and its text


def _utc(created: float) -> str:
    """ISO 8601 in UTC with milliseconds; the seconds part formatted once a second."""
    seconds = int(created)
    if _second[0] != seconds:
        _second[:] = [seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))]
    return f"{_second[1]}.{int((created - seconds) * 1000):03d}Z"


def with_resolved_format(settings: Settings, *, dev: bool) -> Settings:
    """log.format left unset: text under --dev (a person watches), JSON otherwise."""
    if settings.log.format is not None:
        return settings
    chosen = "text" if dev else "json"
    return settings.model_copy(update={"log": settings.log.model_copy(update={"format": chosen})})


def logging_config(settings: Settings) -> dict[str, Any]:
    """A logging.config.dictConfig for this process, uvicorn and its workers."""
    formatter = TextFormatter if settings.log.format == "text" else JsonFormatter
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            # No handler: uvicorn then skips formatting its access line at all.
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


def configure_logging(settings: Settings, *, dev: bool) -> Settings:
    """Apply the format in this process; the settings returned name the format chosen."""
    settings = with_resolved_format(settings, dev=dev)
    logging.config.dictConfig(logging_config(settings))
    return settings
