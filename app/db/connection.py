"""The async database: peewee's pwasyncio over an asyncpg pool, opened and closed with the
app's lifespan.

`db` is the one database object; a request's statements run on one pooled connection,
which the route class (app/http/routing.py) gives back when the request ends. With
`READ_DATABASE_URL` set, `db` keeps a second pool on that server (a replica), and a task
that `reading_from_replica()` takes its connection from there; everything else, and every
unit of work that writes, uses the primary (`DATABASE_URL`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import asyncpg
import orjson
from peewee import OperationalError, __exception_wrapper__
from playhouse.pwasyncio import (
    AsyncPostgresqlConnection,
    AsyncPostgresqlDatabase,
    CursorAdapter,
)

from app.config import Settings
from app.db.failures import connection_broken, database_unavailable, describe
from app.db.guard import (
    EXTRA_COLUMNS,
    carries,
    run_alone,
    set_guard,
    take_guard,
    unwrap,
    wrap,
)

log = logging.getLogger("app.db")

# After the replica failed to connect, reads go to the primary for this long.
READ_RETRY_SECONDS = 5.0

# Set for the task of a request that only reads (app/http/routing.py).
_reading: ContextVar[bool] = ContextVar("reading_from_replica", default=False)


def reading_from_replica(on: bool) -> bool:
    """Route this task's next connection to the replica (if one is configured) or to the
    primary; whether it went to the replica before."""
    previous = _reading.get()
    _reading.set(on)
    return previous


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
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
            sql = numbered(sql)
        if getattr(self.conn, "_con", True) is None:  # a pool proxy already detached
            raise asyncpg.InterfaceError("the connection was released back to the pool")
        records, status, _ = await self.conn._execute(sql, params or (), 0, None,
                                                      return_status=True)
        description = [(key,) for key in records[0].keys()] if records else []
        tail = (status.decode() if isinstance(status, bytes) else status or "").rsplit(" ", 1)
        rowcount = int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else len(records)
        return CursorAdapter(records, rowcount=rowcount, description=description)


# orjson reads an integer beyond 64 bits as a float; the standard library keeps it exact.
# Such an integer has a run of 19 digits or more, found by mapping every digit to "0" and
# everything else to " " (a regular expression took 6 µs a body, more than json.loads).
_DIGITS_AS_ZEROS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_WIDE_RUN = b"0" * 19


def _decode_json(text: bytes) -> Any:
    """orjson, unless the text has a run of 19 digits or more (an integer that may not fit
    in 64 bits, or only digits in a string) or a number orjson refuses (beyond a double's
    range): then the standard library, as before. An event's body of 774 bytes: 2.0 µs,
    against 4.4 with json.loads alone."""
    if _WIDE_RUN not in text.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def _encode_jsonb(value: str | bytes) -> bytes:
    return b"\x01" + (value if isinstance(value, bytes) else value.encode())


def _decode_jsonb(data: bytes) -> Any:
    return _decode_json(data[1:])  # after the binary format's version byte


def _encode_json(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


async def _keep_session(connection: object) -> None:
    """Pool release hook: nothing to reset. The app sets no session state (no SET, LISTEN
    or session advisory locks; migrations use their own connection), and pwasyncio rolls
    back any open transaction before release. asyncpg's default reset would cost one more
    round trip per request."""


class AppDatabase(AsyncPostgresqlDatabase):
    """pwasyncio's database, plus: one round trip per statement (AppConnection), no reset
    query on release, a connection that broke mid-request thrown away at once instead of
    being used again by this request or handed back to the pool, and the replica's pool."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_url: str | None = None
        self._read_params: dict[str, Any] = {}
        self._read_pool: asyncpg.Pool | None = None
        # Its own lock: a replica that is slow to answer never holds up the primary's pool.
        self._read_pool_lock = asyncio.Lock()
        self._read_retry_at = 0.0  # after a failed connect, reads use the primary till then

    async def register_adapters(self, conn: asyncpg.Connection) -> None:
        """pwasyncio's json and jsonb codecs (peewee's fields hand them JSON text), decoding
        with _decode_json instead of the standard library's json.loads."""
        for name, encoder, decoder in (("json", _encode_json, _decode_json),
                                       ("jsonb", _encode_jsonb, _decode_jsonb)):
            await conn.set_type_codec(name, encoder=encoder, decoder=decoder,
                                      schema="pg_catalog", format="binary")
        if self._async_isolation_level:
            await conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL "
                               f"{self._async_isolation_level}")

    def uses_replica(self) -> bool:
        return self._read_url is not None

    async def _acquire_conn_async(self):
        if _reading.get() and self._read_url is not None and not self.in_transaction() \
                and time.monotonic() >= self._read_retry_at:
            try:
                return await self._acquire_read_conn()
            except Exception as exc:  # the replica is down: the primary answers instead
                if not database_unavailable(exc):
                    raise
                self._read_retry_at = time.monotonic() + READ_RETRY_SECONDS
                log.warning("replica unavailable, reading from the primary", extra={
                    "error": describe(exc), "retry_in_s": READ_RETRY_SECONDS})
        pool = self._pool
        if pool is None:  # the first use: pwasyncio creates the pool, bounded in time
            return await super()._acquire_conn_async()
        # pwasyncio's own path, less its asyncio.wait_for around a pool that already exists:
        # on Python 3.11 wait_for runs what it waits for as a task of its own, one more task
        # for every request (docs/PERFORMANCE.md).
        try:
            with __exception_wrapper__:
                conn = await self._pool_acquire(pool)
        except TimeoutError:
            raise OperationalError("Timed out acquiring connection from pool "
                                   f"(acquire_timeout={self._acquire_timeout}).") from None
        conn._pool = pool
        return conn

    async def _acquire_read_conn(self) -> AppConnection:
        async with self._read_pool_lock:
            if self._read_pool is None:
                self._read_pool = await asyncio.wait_for(asyncpg.create_pool(
                    dsn=self._read_url, min_size=1, max_size=self._pool_size,
                    init=self.register_adapters, timeout=self._acquire_timeout,
                    **self._read_params), timeout=self._acquire_timeout)
        raw = await asyncio.wait_for(self._read_pool.acquire(), timeout=self._acquire_timeout)
        conn = AppConnection(raw)
        conn._pool = self._read_pool
        return conn

    async def _release_conn(self, conn):
        pool = getattr(conn, "_pool", None)
        if pool is not None and pool is self._read_pool:
            await pool.release(conn.conn)  # a read connection never holds a transaction
        else:
            await super()._release_conn(conn)

    async def close_pool(self):
        read_pool, self._read_pool = self._read_pool, None
        if read_pool is not None:
            try:
                await asyncio.wait_for(read_pool.close(), timeout=self._acquire_timeout)
            except TimeoutError:
                read_pool.terminate()
        await super().close_pool()

    async def _pool_acquire(self, pool):
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for makes a task per request.
        async with asyncio.timeout(self._acquire_timeout):
            conn = await pool.acquire()
        return AppConnection(conn)

    async def aexecute_sql(self, sql, params=None):
        guard = take_guard()
        if guard is not None:
            if not carries(sql):
                await run_alone(guard)
            else:
                try:
                    cursor = await self._execute_sql(*wrap(sql, params, guard))
                except BaseException:
                    set_guard(guard)  # not checked yet: a retry must still carry it
                    raise
                rows = unwrap(cursor._rows, guard)
                return CursorAdapter(rows, description=cursor.description[:-EXTRA_COLUMNS]
                                     if rows else [])
        return await self._execute_sql(sql, params)

    async def _execute_sql(self, sql, params):
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
        pool = getattr(conn, "_pool", None)
        try:
            raw.terminate()
            if pool is not None:
                await pool.release(raw)
        except Exception:
            log.debug("discarding a broken connection", exc_info=True)

    def pool_usage(self) -> tuple[int, int]:
        """(connections open, connections checked out) of this process's pool."""
        pool = self._pool
        if pool is None:
            return 0, 0
        return pool.get_size(), pool.get_size() - pool.get_idle_size()


db = AppDatabase(None)


def configure(settings: Settings, url: str, read_url: str | None = None) -> None:
    """Point `db` at the database (and its replica, for reads); the pools open on first
    use. A URL may name several hosts (`postgresql://h1:5432,h2:5432/db?
    target_session_attrs=read-write`): asyncpg connects to the one that accepts writes, so
    after a failover new connections reach the new primary."""
    # JIT off: the app runs short indexed statements, and a planner misestimate (the
    # delivery claim's head check) otherwise compiles one for 30 ms to run it in 1 ms.
    # UTC: PostgreSQL writes times into events' JSON in the session's zone, and the API's
    # times are UTC (an early date in a zone with an odd offset came out as "… BC").
    server_settings = {"application_name": "payment-app", "jit": "off", "timezone": "UTC"}
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
    db._read_url = read_url
    # Its own name in pg_stat_activity, and read-only: a write sent there by mistake fails
    # (503) instead of landing on a server that is not the primary.
    db._read_params = {**extra, "server_settings": {
        **server_settings, "application_name": "payment-app-read",
        "default_transaction_read_only": "on"}}
    db._read_pool = None


async def close() -> None:
    if db.database is not None:
        await db.close_pool()
