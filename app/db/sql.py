"""Raw SQL with named parameters: `:name` in the text, values by name, compiled once to the
driver's numbered `$n` (a name used twice is one parameter)."""

from __future__ import annotations

import re
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
    where = [condition if "%s" in condition else f"{condition} %s" for condition in filters]
    params = list(filters.values())
    if after is not None:
        where.append(f"({created}, {key}) < (%s, %s)")
        params.extend(after)
    sql = (select + (" WHERE " + " AND ".join(where) if where else "")
           + f" ORDER BY {created} DESC, {key} DESC LIMIT %s")
    return sql, (*params, limit + 1)
