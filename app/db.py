"""The database: where it is, the async pool's lifecycle, and migrations.

Requests use `db`, a peewee `AsyncPostgresqlDatabase` over an asyncpg pool opened and
closed with the app's lifespan. The migration runner is synchronous (psycopg2), so it can
run from the CLI as well as at start-up.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlparse

import peewee
from playhouse.migrations import Runner
from playhouse.pwasyncio import (
    AsyncPostgresqlConnection,
    AsyncPostgresqlDatabase,
    CursorAdapter,
)

from app.config import PROJECT_ROOT, Settings

log = logging.getLogger("app.db")
T = TypeVar("T")

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
# Any constant works; it only has to be the same for every process of the app.
MIGRATION_LOCK_ID = 7_262_001

def connection_broken(exc: BaseException) -> bool:
    """True when the error means the connection itself is gone or unusable (as opposed to
    a statement the database refused): killed backends, restarts, network failures."""
    import asyncpg

    broken = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
              asyncpg.InternalClientError, asyncpg.AdminShutdownError,
              asyncpg.CannotConnectNowError, ConnectionError, OSError)
    current: BaseException | None = exc
    for _ in range(5):
        if current is None:
            return False
        if isinstance(current, broken):
            return True
        if sqlstate(current) in ("57P01", "57P02", "57P03") or \
                (sqlstate(current) or "").startswith("08"):
            return True
        current = underlying(current)
    return False


def underlying(exc: BaseException) -> BaseException | None:
    """The driver's exception behind peewee's wrapper (kept as `orig`), or the cause."""
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        return orig
    return exc.__cause__ or exc.__context__


@lru_cache(maxsize=512)
def _numbered(sql: str) -> str:
    return AsyncPostgresqlConnection._translate_placeholders(sql)


class AppConnection(AsyncPostgresqlConnection):
    """One round trip per statement.

    pwasyncio runs every statement as an explicit `prepare()` (a server round trip that
    bypasses asyncpg's statement cache) and then a fetch (a second one). asyncpg's own
    execute path looks the statement up in its per-connection cache and sends only
    Bind/Execute/Sync, and still reports the command status peewee needs for row counts.
    With the cache off (pgbouncer), asyncpg uses unnamed statements, which stay correct
    in transaction pooling.
    """

    async def _execute(self, sql, params=None):
        if params:
            sql = _numbered(sql)
        if getattr(self.conn, "_con", True) is None:  # a pool proxy already detached
            import asyncpg

            raise asyncpg.InterfaceError("the connection was released back to the pool")
        records, status, _ = await self.conn._execute(sql, params or (), 0, None,
                                                      return_status=True)
        description = [(key,) for key in records[0].keys()] if records else []
        tail = (status.decode() if isinstance(status, bytes) else status or "").rsplit(" ", 1)
        rowcount = int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else len(records)
        return CursorAdapter(records, rowcount=rowcount, description=description)


async def _keep_session(connection: object) -> None:
    """Pool release hook: nothing to reset. The app sets no session state (no SET, LISTEN
    or session advisory locks; migrations use their own connection), and pwasyncio rolls
    back any open transaction before release. asyncpg's default reset would cost one more
    round trip per request."""


class AppDatabase(AsyncPostgresqlDatabase):
    """pwasyncio's database, plus: one round trip per statement (AppConnection), no reset
    query on release, and a connection that broke mid-request is thrown away at once
    instead of being used again by this request or handed back to the pool."""

    async def _pool_acquire(self, pool):
        conn = await asyncio.wait_for(pool.acquire(), timeout=self._acquire_timeout)
        return AppConnection(conn)

    async def aexecute_sql(self, sql, params=None):
        try:
            return await super().aexecute_sql(sql, params)
        except Exception as exc:
            if connection_broken(exc):
                await self.discard_connection()
            raise

    async def discard_connection(self) -> None:
        try:
            state = self._state._current()
        except RuntimeError:
            return
        conn = state.conn
        # Forget the connection but keep the transaction bookkeeping: the atomic block
        # that is unwinding still pops its entry (its rollback then fails, as it must).
        state.conn, state.closed = None, True
        raw = getattr(conn, "conn", None)
        if raw is None:
            return
        try:
            raw.terminate()
            if self._pool is not None:
                await self._pool.release(raw)
        except Exception:
            log.debug("discarding a broken connection", exc_info=True)


db = AppDatabase(None)


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL under `data_dir` and return its URL."""
    import pgserver  # imported lazily: only needed without DATABASE_URL

    pgdata = data_dir / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None keeps the server running after this process exits, so the
    # next start (and every worker process) reuses it instead of starting another.
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    return server.get_uri("postgres")


def database_url(settings: Settings) -> str:
    return settings.database_url or embedded_database_url(settings.data_dir)


def connect_kwargs(url: str) -> dict:
    """libpq-style keyword arguments for psycopg2 from a postgresql:// URL."""
    parts = urlparse(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    kwargs: dict = {
        "database": unquote(parts.path.lstrip("/")) or query.pop("dbname", None) or "postgres",
        "user": unquote(parts.username) if parts.username else query.pop("user", None),
        "password": unquote(parts.password) if parts.password else None,
        "host": parts.hostname or query.pop("host", None),
        "port": parts.port,
    }
    kwargs.update(query)
    return {k: v for k, v in kwargs.items() if v not in (None, "")}


def init_database(settings: Settings, url: str | None = None) -> str:
    """Point `db` at the configured database; the pool opens on first use."""
    url = url or database_url(settings)
    server_settings = {"application_name": "payment-app"}
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    extra: dict = {"server_settings": server_settings, "reset": _keep_session}
    if not settings.db_statement_cache:
        # Needed behind pgbouncer in transaction-pooling mode.
        extra["statement_cache_size"] = 0
    db.init(url, **extra)
    # The pool knobs are constructor arguments in pwasyncio; `init` would hand them to
    # asyncpg as connection parameters, so they are set here instead.
    db._pool_size = settings.db_pool_size
    db._pool_min_size = 1
    db._acquire_timeout = settings.db_acquire_timeout
    return url


def sync_database(url: str) -> peewee.PostgresqlDatabase:
    return peewee.PostgresqlDatabase(**connect_kwargs(url))


def migrate(url: str) -> list[str]:
    """Apply pending migrations; safe to run from several processes at once."""
    database = sync_database(url)
    database.connect()
    try:
        # One process migrates at a time; the others wait, then find nothing to do.
        database.execute_sql("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        try:
            applied = Runner(database, directory=str(MIGRATIONS_DIR)).up()
            sync_currencies(database)
        finally:
            database.execute_sql("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    finally:
        database.close()
    for name in applied:
        log.info("migration applied", extra={"migration": name})
    return applied


def sync_currencies(database: peewee.Database) -> None:
    """Add the currencies the app knows (app/money.py) that the `currency` table lacks.

    A code's exponent is never changed here: stored amounts are minor units of it. If the
    ISO list ever changes one, that needs a migration that rescales the invoices in it."""
    from app.money import CURRENCY_EXPONENTS

    if not database.table_exists("currency"):
        return  # before migration 0002
    stored = dict(database.execute_sql("SELECT code, exponent FROM currency").fetchall())
    for code, exponent in CURRENCY_EXPONENTS.items():
        if code not in stored:
            database.execute_sql("INSERT INTO currency (code, exponent) VALUES (%s, %s) "
                                 "ON CONFLICT (code) DO NOTHING", (code, exponent))
        elif stored[code] != exponent:
            log.warning("currency exponent differs from ISO 4217; kept",
                        extra={"currency": code, "stored": stored[code], "iso": exponent})


async def close_database() -> None:
    if db.database is not None:
        await db.close_pool()


async def fetch_one(query: peewee.SelectQuery) -> Any:
    """The first row of a SELECT, or None."""
    rows = await db.list(query.limit(1))
    return rows[0] if rows else None


# SQLSTATEs that mean "run the whole transaction again": serialization failure, deadlock.
RETRYABLE_SQLSTATES = {"40001", "40P01"}
TRANSACTION_ATTEMPTS = 3


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL error code behind a peewee or asyncpg exception, if any."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        code = getattr(current, "sqlstate", None)
        if code:
            return str(code)
        current = underlying(current)
        seen += 1
    return None


async def with_retries(fn: Callable[[], Awaitable[T]], *, atomic: bool = True) -> T:
    """Run `fn` (a coroutine function) in its own transaction, again on a deadlock or a
    serialization failure, a bounded number of times. Inside an outer transaction it just
    runs: the outermost owner is the one that can start over."""
    if db.in_transaction():
        return await fn()
    for attempt in range(TRANSACTION_ATTEMPTS):
        try:
            if not atomic:
                return await fn()
            async with db.atomic():
                return await fn()
        except peewee.DatabaseError as exc:
            if sqlstate(exc) not in RETRYABLE_SQLSTATES or attempt == TRANSACTION_ATTEMPTS - 1:
                raise
            log.info("transaction retried", extra={"sqlstate": sqlstate(exc),
                                                   "attempt": attempt + 1})
            await asyncio.sleep(0.005 * 2**attempt + random.random() * 0.005)  # noqa: S311
    raise AssertionError("unreachable")  # pragma: no cover
