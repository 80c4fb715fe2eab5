"""What a database failure means: the connection is gone, the database is unreachable or
busy, or the statement was refused. One place decides, for the retry policy
(app/db/transaction.py) and for the HTTP answer (app/http/handlers.py)."""

from __future__ import annotations

import asyncio

import asyncpg
import peewee

# Run the whole transaction again: serialization failure, deadlock.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
# The database was too busy: the above, a statement timeout, a lock not available.
CONTENTION_SQLSTATES = RETRYABLE_SQLSTATES | {"57014", "55P03"}

_BROKEN = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
           asyncpg.InternalClientError, asyncpg.AdminShutdownError,
           asyncpg.CannotConnectNowError, ConnectionError, OSError)


def _chain(exc: BaseException, depth: int = 5) -> list[BaseException]:
    """The error and what is behind it: peewee keeps the driver's error as `orig`."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(found) < depth:
        found.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else (
            current.__cause__ or current.__context__)
    return found


def _said(exc: BaseException, what: str) -> str | None:
    for error in _chain(exc):
        value = getattr(error, what, None)
        if value:
            return str(value)
    return None


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL error code behind a peewee or asyncpg exception, if any."""
    return _said(exc, "sqlstate")


def constraint(exc: BaseException) -> str | None:
    """The constraint a refused statement broke (a unique key, say), if the error names one."""
    return _said(exc, "constraint_name")


def describe(exc: BaseException) -> str:
    """One line for a log: what the database said, if anything behind `exc` carries it (a
    failed rollback after a refused statement would otherwise hide the refusal)."""
    for error in _chain(exc):
        if getattr(error, "sqlstate", None):
            return f"{type(error).__name__}: {error}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


def connection_broken(exc: BaseException) -> bool:
    """The connection itself is gone or unusable (killed backend, restart, network), or it
    reaches a server that no longer takes writes (a demoted primary: 25006), as opposed to
    a statement the database refused."""
    for error in _chain(exc):
        code = getattr(error, "sqlstate", None) or ""
        if isinstance(error, _BROKEN) or code in ("57P01", "57P02", "57P03", "25006") \
                or code.startswith("08"):
            return True
    return False


def database_unavailable(exc: BaseException) -> bool:
    """The database is down, restarting or unreachable, or the pool had no connection."""
    if connection_broken(exc):
        return True
    for error in _chain(exc):
        if isinstance(error, asyncio.TimeoutError):
            return True
        if isinstance(error, peewee.OperationalError | peewee.InterfaceError):
            message = str(error).lower()
            if "timed out" in message or "pool" in message or "connect" in message:
                return True
    return False


def retryable(exc: BaseException) -> bool:
    return sqlstate(exc) in RETRYABLE_SQLSTATES


def contention(exc: BaseException) -> bool:
    return sqlstate(exc) in CONTENTION_SQLSTATES
