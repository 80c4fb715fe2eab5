"""Log lines through the standard logging module: JSON (python-json-logger) in production
and tests, one readable line per record in development.

`LOG_FORMAT` chooses (`json` or `text`); left unset, development gets `text` and every
other APP_ENV `json`. uvicorn's records go the same way; its `color_message` (the message
with ANSI colour codes) is dropped from both.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

_configured = False
# Attributes every LogRecord has; the rest are the `extra` fields a call passed.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message", "taskName"}


class _Json(JsonFormatter):
    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record.pop("color_message", None)


# Fields the access line's message already says, left out of the text format.
_IN_ACCESS_MESSAGE = {"method", "path", "route", "status", "duration_ms"}


class _Text(logging.Formatter):
    """`12:00:01 INFO  app.access GET /invoices/… 200 12.3 ms  request_id=…`"""

    def format(self, record: logging.LogRecord) -> str:
        skip = _STANDARD | (_IN_ACCESS_MESSAGE if record.name == "app.access" else set())
        extra = {k: v for k, v in vars(record).items() if k not in skip}
        line = (f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} "
                f"{record.name} {record.getMessage()}")
        if extra:
            line += "  " + " ".join(f"{k}={v}" for k, v in extra.items() if v is not None)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    global _configured
    if _configured:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Text() if fmt == "text" else _Json(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log would repeat app.access without the request id.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    _configured = True
