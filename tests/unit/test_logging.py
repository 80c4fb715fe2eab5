"""Log lines: one readable line per record in development, JSON elsewhere; no ANSI codes."""

from __future__ import annotations

import json
import logging

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
    fmt = _Json("%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level"})
    data = json.loads(fmt.format(record(request_id="r1", color_message="\x1b[1mx")))
    assert data["message"] == "GET /x 200" and data["request_id"] == "r1"
    assert "color_message" not in data
