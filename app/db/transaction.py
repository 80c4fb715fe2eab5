"""The unit of work: a request's database work, opened at the edge.

A request's statements share one pooled connection, taken on first use and given back when
the route is done (app/http/routing.py). A router runs a write as `await transaction(fn)`:
one transaction, run again (a bounded number of times) when PostgreSQL reports a deadlock
or a serialization failure. Services never open, commit or retry transactions; they run
their statements and raise domain errors.

The exceptions run `autocommit(fn)`: the ledger statement of a payment without an
Idempotency-Key runs on its own, so that the invoice's row lock lasts exactly one round
trip (app/ledger/router.py says why), and so does a provider's payment as it is, in one
statement (app/http/replay.py, at_once()). It has the same retry policy.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import peewee

from app.db.connection import db, reading_from_replica
from app.db.failures import retryable, sqlstate

log = logging.getLogger("app.db")
T = TypeVar("T")

ATTEMPTS = 3


async def transaction(work: Callable[[], Awaitable[T]]) -> T:
    return await _retrying(work, atomic=True)


async def autocommit(work: Callable[[], Awaitable[T]]) -> T:
    return await _retrying(work, atomic=False)


async def release_connection() -> None:
    """Give this task's connection back to the pool, if it holds one."""
    if not db.is_closed() and not db.in_transaction():
        try:
            await db.aclose()
        except Exception:
            log.debug("releasing the request's connection", exc_info=True)


async def _retrying(work: Callable[[], Awaitable[T]], *, atomic: bool) -> T:
    if db.in_transaction():
        raise RuntimeError("a unit of work is already open: open one per request, at the edge")
    if reading_from_replica(False) and db.uses_replica():
        await release_connection()  # a unit of work runs on the primary
    for attempt in range(ATTEMPTS):
        try:
            if not atomic:
                return await work()
            async with db.atomic():
                return await work()
        except peewee.DatabaseError as exc:
            if not retryable(exc) or attempt == ATTEMPTS - 1:
                raise
            log.info("transaction retried", extra={"sqlstate": sqlstate(exc),
                                                   "attempt": attempt + 1})
            await asyncio.sleep(0.005 * 2**attempt + random.random() * 0.005)  # noqa: S311
    raise AssertionError("unreachable")  # pragma: no cover
