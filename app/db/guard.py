"""A check that rides on the task's next SELECT instead of costing a round trip of its own.

An authenticated request must check its token against the database (app/auth/deps.py) and
then read or lock what it works on. The check is a `Guard`, set for the request's task:
its next plain SELECT, whatever the route and whichever query builds it, runs as

    WITH guard AS (<the check>)
    SELECT q.*, guard.allowed AS guard_allowed, guard.info AS guard_info
    FROM guard LEFT JOIN LATERAL (
        SELECT s.*, true AS guard_row FROM (<the SELECT>) s
        WHERE guard.allowed OFFSET 0) q ON true

one statement that checks, then reads. With no `guard` row, or one that is not `allowed`,
the SELECT is never run: the nested loop has no outer row, or the subquery's one-time
filter is false. (`OFFSET 0` keeps PostgreSQL from pulling the subquery up into the join,
where `guard.allowed` would become a join filter tested after the SELECT had run: for a
refused caller it would read, and lock, for nothing.) So it reads and locks nothing, and
`settle` is told and raises. Otherwise the SELECT's own rows come back in its own order: the
guard side is one row, and a lateral join is a nested loop, which returns the inner rows of
that row as the inner plan yields them. The three columns past its own are cut off, and a
`guard_row` that is NULL (the left join's empty side) means it had no row at all.

What a SELECT must not do to be carried: name a column `guard_row`, `guard_allowed` or
`guard_info`, or (in the `$n` style) write `$` and digits inside a string literal.

A statement that is not a plain SELECT (an INSERT, a WITH, one with comments in front) does
not carry the check: the guard's `check_alone` runs first, as its own statement. So does a
request that ends without any statement: the route class settles the guard before its
answer counts (app/http/routing.py), so a check that fails wins over anything else.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from app.errors import DomainError

_DOLLAR = re.compile(r"\$(\d+)")
# What is cut off each row: guard_row, guard_allowed, guard_info.
EXTRA_COLUMNS = 3


@dataclass
class Guard:
    """`cte` is the body of `guard AS (...)` with %s parameters `params`; it yields at most
    one row, with `allowed` (boolean) and `info` (a value that is never NULL, handed to
    `settle`; a statement that carries the guard on its own, such as the Idempotency-Key's
    claim in app/http/replay.py, tells "no row" by a NULL `info`).
    `settle(row)` gets (allowed, info), or None when the check gave no row: it raises to
    refuse. `check_alone()` does the whole check as statements of its own."""

    cte: str
    params: tuple
    settle: Callable[[tuple[bool, Any] | None], None]
    check_alone: Callable[[], Awaitable[None]]


_pending: ContextVar[Guard | None] = ContextVar("pending_guard", default=None)


def set_guard(guard: Guard | None) -> None:
    _pending.set(guard)


def take_guard() -> Guard | None:
    """The task's unsettled guard, which is from now on the caller's to settle."""
    guard = _pending.get()
    if guard is not None:
        _pending.set(None)
    return guard


async def settle_pending() -> None:
    """Run the task's guard on its own if no statement has carried it."""
    guard = take_guard()
    if guard is not None:
        await run_alone(guard)


async def run_alone(guard: Guard) -> None:
    """`guard.check_alone()`, its own statements carrying nothing. Unless it ends in a
    verdict (accepted, or refused with a DomainError), the guard stands again: a unit of work
    retried after a deadlock in the check must still be checked."""
    try:
        await guard.check_alone()
    except DomainError:
        raise
    except BaseException:
        set_guard(guard)
        raise


def carries(sql: str) -> bool:
    return sql.lstrip()[:6].upper() == "SELECT"


def wrap(sql: str, params: tuple | list | None, guard: Guard) -> tuple[str, tuple]:
    """`sql` behind `guard`, in the parameter style `sql` is written in."""
    params = tuple(params or ())
    if not params:  # it was sent as written; now it has parameters, so % must be escaped
        sql = sql.replace("%", "%%")
    text, guard_first = wrapped_text(sql, guard.cte, len(guard.params))
    return text, (*guard.params, *params) if guard_first else (*params, *guard.params)


@lru_cache(maxsize=1024)  # a route's statements are the same few texts, request after request
def wrapped_text(sql: str, cte: str, n_params: int) -> tuple[str, bool]:
    if "%s" in sql:  # peewee's style: numbered by position in the text, so the guard's first
        guard_first = True
    else:  # already numbered ($n): the guard's come after
        start = max((int(n) for n in _DOLLAR.findall(sql)), default=0)
        numbers = iter(range(start + 1, start + 1 + n_params))
        cte = re.sub("%s", lambda _: f"${next(numbers)}", cte)
        guard_first = False
    return (f"WITH guard AS ({cte}) "
            f"SELECT q.*, guard.allowed AS guard_allowed, guard.info AS guard_info "
            f"FROM guard LEFT JOIN LATERAL ("
            f"SELECT s.*, true AS guard_row FROM ({sql.rstrip().rstrip(';')}\n) s "
            f"WHERE guard.allowed OFFSET 0) q ON true"), guard_first


def unwrap(records: list[Any], guard: Guard) -> list[Any]:
    """The SELECT's own rows (each still holding the three extra columns at its end), once
    `guard.settle` has accepted the check."""
    if not records:
        guard.settle(None)
        return []
    first = records[0]
    guard.settle((first["guard_allowed"], first["guard_info"]))
    return [] if first["guard_row"] is None else records
