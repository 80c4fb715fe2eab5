"""Raw SQL with named parameters: `:name` in the text, values by name, compiled once to the
driver's numbered `$n` (a name used twice is one parameter)."""

from __future__ import annotations

import re
from operator import index
from typing import Any

_NAME = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Statement:
    def __init__(self, text: str) -> None:
        self.names: list[str] = []

        def number(match: re.Match) -> str:
            name = match.group(1)
            if name not in self.names:
                self.names.append(name)
            return f"${self.names.index(name) + 1}"

        self.source = text.strip()
        self.text = _NAME.sub(number, self.source)

    def params(self, values: dict[str, Any] | None = None, **more: Any) -> tuple:
        given = {**(values or {}), **more}
        missing = [name for name in self.names if name not in given]
        if missing:
            raise KeyError(f"missing SQL parameters: {', '.join(missing)}")
        return tuple(given[name] for name in self.names)


def newest_first(select: str, *, created: str, key: str, filters: dict[str, Any],
                 after: tuple[Any, Any] | None, limit: int) -> tuple[str, tuple]:
    """A keyset page, newest first: `select` with `filters` (a condition ending in an
    operator, or holding one `%s`, → its value) and, past the cursor, rows before `after`
    in (`created`, `key`) order; `limit + 1` rows, so the caller knows whether there is a
    next page."""
    return _keyset_page(select, created=created, key=key, filters=filters, after=after,
                        limit=limit, newest=True)


def oldest_first(select: str, *, created: str, key: str, filters: dict[str, Any],
                 after: tuple[Any, Any] | None, limit: int) -> tuple[str, tuple]:
    """newest_first() the other way round: past the cursor are the rows after `after`."""
    return _keyset_page(select, created=created, key=key, filters=filters, after=after,
                        limit=limit, newest=False)


def _keyset_page(select: str, *, created: str, key: str, filters: dict[str, Any],
                 after: tuple[Any, Any] | None, limit: int, newest: bool) -> tuple[str, tuple]:
    where = [condition if "%s" in condition else f"{condition} %s" for condition in filters]
    params = list(filters.values())
    if after is not None:
        where.append(f"({created}, {key}) {'<' if newest else '>'} (%s, %s)")
        params.extend(after)
    order = " DESC" if newest else ""
    # The LIMIT is written into the text, not passed as a parameter: PostgreSQL plans a
    # prepared statement once only when its generic plan looks no dearer than a fresh one,
    # and a generic plan, not knowing the LIMIT, expects to read a tenth of the table. On a
    # big table it never did, and planned every page afresh: half of PostgreSQL's CPU per
    # page (docs/PERFORMANCE.md, "A list page planned once"). A text per page size.
    sql = (select + (" WHERE " + " AND ".join(where) if where else "")
           + f" ORDER BY {created}{order}, {key}{order} LIMIT {index(limit) + 1}")
    return sql, tuple(params)
