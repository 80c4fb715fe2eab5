"""Log lines through the standard logging module: one JSON object per line in production
and tests, one readable line per record in development.

`LOG_FORMAT` chooses (`json` or `text`); left unset, development gets `text` and every
other APP_ENV `json`. uvicorn's records go the same way; its `color_message` (the message
with ANSI colour codes) is dropped from both.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

_configured = False
# Attributes every LogRecord has; the rest are the `extra` fields a call passed.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message", "taskName"}


class _Json(logging.Formatter):
    """`{"time", "level", "logger", "message", <the call's extra fields>, "exc_info"}`,
    encoded by orjson. At the default level every request writes one of these (the access
    line): python-json-logger took 10.7 µs a line, this 2.7 µs
    (docs/PERFORMANCE.md). The time is formatted once per second."""

    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime(
                "%Y-%m-%dT%H:%M:%S%z", time.localtime(second))
        line = {"time": self._stamp, "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STANDARD:
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


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
    handler.setFormatter(_Text() if fmt == "text" else _Json())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log would repeat app.access without the request id.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    _configured = True
