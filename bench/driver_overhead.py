"""What one query costs through the app's driver path, against the alternatives.

playhouse.pwasyncio runs every query as `stmt = await conn.prepare(sql)` then
`await stmt.fetch(*params)`. asyncpg's `prepare()` bypasses its statement cache, so every
query is a Parse round trip, a Close of the previous statement, then Bind/Execute, and the
server plans it again each time. A pool release also runs asyncpg's reset query (one more
round trip). This measures, sequentially on one connection, GET /invoices/{id}'s invoice
read done those ways, on a throwaway database seeded like the benchmark's:

    .venv/bin/python bench/driver_overhead.py [--queries 3000]
"""

# ruff: noqa: E402  (the project root goes on sys.path before the imports that need it)
from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg
import harness
import seed

from app.invoices.queries import SELECT_INVOICE

SQL = SELECT_INVOICE + " WHERE i.id = $1"
DB_NAME = "payapp_bench_driver"


async def timed(label: str, n: int, one: Callable[[int], Awaitable[object]]) -> None:
    for i in range(50):  # warm-up
        await one(i)
    started = time.perf_counter()
    for i in range(n):
        await one(i)
    print(f"  {(time.perf_counter() - started) / n * 1e6:7.0f} µs  {label}")


async def measure(url: str, n: int) -> None:
    ids = [uuid.UUID(seed.invoice_id(k)) for k in range(1, seed.SPREAD + 1)]
    conn = await asyncpg.connect(url)

    async def as_pwasyncio(i: int) -> object:
        stmt = await conn.prepare(SQL)
        return await stmt.fetch(ids[i % len(ids)])

    async def cached(i: int) -> object:
        return await conn.fetch(SQL, ids[i % len(ids)])

    print(f"one invoice read (SELECT_INVOICE by id), {n} times in a row, one connection:")
    await timed("prepare() + fetch(), as playhouse.pwasyncio does (today)", n, as_pwasyncio)
    await timed("conn.fetch(): asyncpg's statement cache", n, cached)
    await conn.close()

    async def noop_reset(_: asyncpg.Connection) -> None:
        return None

    for label, extra in (("pool acquire/release, default reset query", {}),
                         ("pool acquire/release, reset=no-op", {"reset": noop_reset})):
        pool = await asyncpg.create_pool(url, min_size=1, max_size=1, **extra)

        async def pooled(i: int, pool: asyncpg.Pool = pool) -> object:
            async with pool.acquire() as c:
                return await c.fetch(SQL, ids[i % len(ids)])

        await timed(f"{label} + conn.fetch()", n, pooled)
        await pool.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=3000)
    args = parser.parse_args()
    with harness.throwaway_database(DB_NAME) as url:
        db = seed.Database(url)
        db.seed_base()
        db.close()
        asyncio.run(measure(url, args.queries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
