"""Log lines: one readable line per record in development, JSON elsewhere; no ANSI codes."""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from app.ops.logging import _Json, _Text


def record(**extra: object) -> logging.LogRecord:
    r = logging.LogRecord("app.access", logging.INFO, __file__, 1, "%s %s %s", ("GET", "/x", 200),
                          None)
    for key, value in extra.items():
        setattr(r, key, value)
    return r


def test_text_is_one_line_with_the_fields() -> None:
    line = _Text().format(record(request_id="r1", user_id=None, color_message="\x1b[1mx",
                                 method="GET", path="/x", status=200))
    assert "\n" not in line and "\x1b" not in line
    assert "INFO" in line and "app.access GET /x 200" in line and "request_id=r1" in line
    assert "user_id" not in line  # empty fields are left out
    assert "status=" not in line and "method=" not in line  # the message says them


def test_json_drops_the_coloured_copy() -> None:
    data = json.loads(_Json().format(record(request_id="r1", color_message="\x1b[1mx")))
    assert data["message"] == "GET /x 200" and data["request_id"] == "r1"
    assert "color_message" not in data


def test_json_is_one_object_with_the_fields_in_order() -> None:
    """The layout python-json-logger gave (this formatter replaced it, for speed)."""
    when = datetime(2026, 1, 1, tzinfo=UTC)
    line = _Json().format(record(request_id="r1", user_id=None, duration_ms=1.5,
                                 id=uuid.UUID(int=7), at=when, amount=Decimal("1.50")))
    assert "\n" not in line
    data = json.loads(line)
    assert list(data) == ["time", "level", "logger", "message", "request_id", "user_id",
                          "duration_ms", "id", "at", "amount"]
    assert data["level"] == "INFO" and data["logger"] == "app.access"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", data["time"])
    assert data["user_id"] is None and data["duration_ms"] == 1.5
    assert data["id"] == str(uuid.UUID(int=7)) and data["amount"] == "1.50"
    assert data["at"] == "2026-01-01T00:00:00+00:00"


def test_json_carries_the_traceback() -> None:
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        failed = logging.LogRecord("app", logging.ERROR, __file__, 1, "failed %s", ("x",),
                                   sys.exc_info())
    data = json.loads(_Json().format(failed))
    assert data["message"] == "failed x" and data["level"] == "ERROR"
    assert data["exc_info"].startswith("Traceback") and "ZeroDivisionError: boom" in \
        data["exc_info"]
