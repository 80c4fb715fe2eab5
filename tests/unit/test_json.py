"""JSON bodies: numbers exact, NaN refused, nesting bounded without recursion."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from app.http.jsonbody import MAX_DEPTH, loads_exact


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_numbers_stay_exact() -> None:
    assert loads_exact(b'{"a": 0.30000000000000004, "b": 10}') == {
        "a": Decimal("0.30000000000000004"), "b": 10}


@pytest.mark.parametrize("body", [b"NaN", b"[Infinity]", b"-Infinity", b"\xff", b"{"])
def test_not_json_is_refused(body: bytes) -> None:
    with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)):
        loads_exact(body)


def test_nesting_is_bounded() -> None:
    assert loads_exact(nested(MAX_DEPTH)) is not None
    for depth in (MAX_DEPTH + 1, 990, 5_000, 100_000):
        with pytest.raises(json.JSONDecodeError, match="nested deeper than 32 levels"):
            loads_exact(nested(depth))
