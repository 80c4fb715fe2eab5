"""Raw SQL with named parameters compiled to the driver's numbered ones."""

from __future__ import annotations

import pytest

from app.db.sql import Statement


def test_names_become_numbers_once_each() -> None:
    s = Statement("SELECT :a::uuid, :b, :a, x::text FROM t WHERE y = :b_2 AND z = 'q'")
    assert s.text == "SELECT $1::uuid, $2, $1, x::text FROM t WHERE y = $3 AND z = 'q'"
    assert s.names == ["a", "b", "b_2"]
    assert s.params({"a": 1, "b_2": 3}, b=2, unused=4) == (1, 2, 3)


def test_a_missing_value_is_named() -> None:
    with pytest.raises(KeyError, match="b"):
        Statement("SELECT :a, :b").params(a=1)


def test_a_newest_first_page_filters_then_starts_past_the_cursor() -> None:
    from app.db.sql import newest_first

    sql, params = newest_first("SELECT * FROM t", created="t.c", key="t.k",
                               filters={"t.x =": 1}, after=("2026-01-01", 7), limit=20)
    assert sql == ("SELECT * FROM t WHERE t.x = %s AND (t.c, t.k) < (%s, %s) "
                   "ORDER BY t.c DESC, t.k DESC LIMIT 21")
    assert params == (1, "2026-01-01", 7)
    assert newest_first("S", created="c", key="k", filters={}, after=None, limit=5) == (
        "S ORDER BY c DESC, k DESC LIMIT 6", ())


def test_an_oldest_first_page_starts_after_the_cursor() -> None:
    from app.db.sql import oldest_first

    sql, params = oldest_first("SELECT * FROM t", created="t.c", key="t.k",
                               filters={"t.x =": 1}, after=("2026-01-01", 7), limit=20)
    assert sql == ("SELECT * FROM t WHERE t.x = %s AND (t.c, t.k) > (%s, %s) "
                   "ORDER BY t.c, t.k LIMIT 21")
    assert params == (1, "2026-01-01", 7)


def test_the_limit_is_written_only_as_an_integer() -> None:
    from app.db.sql import newest_first

    with pytest.raises(TypeError):
        newest_first("S", created="c", key="k", filters={}, after=None, limit="5; --")
