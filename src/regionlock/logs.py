"""The service's log lines on stderr: readable text, or one JSON object per line for a log
collector (REGIONLOCK_LOG_FORMAT; docs/operating.md, "Logs"). Set up once per server process
(`api/asgi.py`) for regionlock's own loggers and uvicorn's error log."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from regionlock.settings import Settings

LOGGERS = ("regionlock", "uvicorn.error")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What a record carries that is not the caller's: never copied into a JSON line as a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's message with terminal colours
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, pid; the
    traceback as `error` when there is one; and any `extra={...}` fields of the call."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process or os.getpid(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in line:
                line[name] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(settings: Settings, stream: Any = None) -> logging.Handler:
    """Send regionlock's and uvicorn's error log to `stream` (stderr) in the settings' format
    and level; returns the handler (replacing one set up before)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT))
    handler.set_name("regionlock")
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "regionlock"]:
            logger.removeHandler(old)
        if name == "uvicorn.error":  # uvicorn's own handler would print it a second time
            for old in list(logger.handlers):
                logger.removeHandler(old)
        logger.addHandler(handler)
        level = logging.getLevelName(settings.log_level.upper())
        if name == "uvicorn.error":  # its start-up chatter only when asked for DEBUG
            level = max(level, logging.WARNING) if level > logging.DEBUG else level
        logger.setLevel(level)
        logger.propagate = False
    return handler


def banner(settings: Settings, message: str) -> str:
    """A line the serve command prints before the workers start, in the settings' format."""
    if settings.log_format != "json":
        return message
    record = logging.makeLogRecord(
        {"name": "regionlock.serve", "levelname": "INFO", "msg": message}
    )
    return JsonFormatter().format(record)
