"""The async database: peewee's pwasyncio over an asyncpg pool, opened and closed with the
app's lifespan.

`db` is the one database object; a request's statements run on one pooled connection,
which the route class (app/http/routing.py) gives back when the request ends.
"""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache

import asyncpg
from playhouse.pwasyncio import (
    AsyncPostgresqlConnection,
    AsyncPostgresqlDatabase,
    CursorAdapter,
)

from app.config import Settings
from app.db.failures import connection_broken

log = logging.getLogger("app.db")


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

    def pool_usage(self) -> tuple[int, int]:
        """(connections open, connections checked out) of this process's pool."""
        pool = self._pool
        if pool is None:
            return 0, 0
        return pool.get_size(), pool.get_size() - pool.get_idle_size()


db = AppDatabase(None)


def configure(settings: Settings, url: str) -> None:
    """Point `db` at the database; the pool opens on first use."""
    # JIT off: the app runs short indexed statements, and a planner misestimate (the
    # delivery claim's head check) otherwise compiles one for 30 ms to run it in 1 ms.
    server_settings = {"application_name": "payment-app", "jit": "off"}
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


async def close() -> None:
    if db.database is not None:
        await db.close_pool()
