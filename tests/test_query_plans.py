"""Statements that PostgreSQL plans once per connection, not on every execution.

A prepared statement is planned afresh on every execution while its generic plan (made
without the parameters' values) looks dearer than a plan made for them. The invoices' list
page passed its LIMIT as a parameter, and on a big table it always did: not knowing the
LIMIT, the generic plan expects to read a tenth of the table. Planning the page's join cost
PostgreSQL as much CPU as running it (docs/PERFORMANCE.md, "A list page planned once")."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg2
import pytest

from app.auth import queries as auth_queries
from app.db.connection import numbered
from app.db.guard import Guard, wrap
from app.db.location import connect_kwargs
from app.db.sql import newest_first
from app.invoices.queries import SELECT_INVOICE

INVOICES = 100_000
USERS = 100


def _user(n: int) -> str:
    return f"00000000-0000-4000-9000-{n:012d}"


@pytest.fixture(scope="module")
def big_invoices(database_url: str) -> Iterator[psycopg2.extensions.cursor]:
    """A session of its own in which `users` and `invoices` are temporary copies of the
    real tables (same columns, defaults and indexes), holding USERS and INVOICES rows: the
    temporary schema comes first in the search path, so the app's statements read them."""
    conn = psycopg2.connect(**connect_kwargs(database_url))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for table in ("users", "invoices"):
                cur.execute(f"CREATE TEMP TABLE {table} (LIKE public.{table} INCLUDING ALL)")
            cur.execute(
                "INSERT INTO users (id, username, email, password_hash) "
                "SELECT ('00000000-0000-4000-9000-' || lpad(u::text, 12, '0'))::uuid, "
                "'plan_user_' || u, 'plan_user_' || u || '@example.com', '!' "
                "FROM generate_series(0, %s) u", (USERS - 1,))
            cur.execute("UPDATE users SET role = 'admin' WHERE id = %s", (_user(0),))
            cur.execute(
                "INSERT INTO invoices (id, payer_id, receiver_id, amount, currency, "
                "description, created_at, updated_at) "
                "SELECT gen_random_uuid(), "
                "('00000000-0000-4000-9000-' || lpad((n %% %s)::text, 12, '0'))::uuid, "
                "('00000000-0000-4000-9000-' || lpad(((n + 1) %% %s)::text, 12, '0'))::uuid, "
                "1000, 'INR', 'invoice ' || n, "
                "timestamptz '2026-01-01' + n * interval '1 s', "
                "timestamptz '2026-01-01' + n * interval '1 s' "
                "FROM generate_series(1, %s) n", (USERS, USERS, INVOICES))
            cur.execute("ANALYZE users")
            cur.execute("ANALYZE invoices")
            yield cur
    finally:
        conn.close()


def _plans(cur: psycopg2.extensions.cursor, sql: str, params: tuple) -> tuple[int, int]:
    """(generic, custom) plans PostgreSQL made over 12 executions of `sql` prepared, as the
    driver prepares the app's statements."""
    cur.execute("DEALLOCATE ALL")
    cur.execute(f"PREPARE page AS {numbered(sql) if params else sql}")
    args = f" ({', '.join(['%s'] * len(params))})" if params else ""
    for _ in range(12):
        cur.execute("EXECUTE page" + args, params)
        assert len(cur.fetchall()) == 51
    cur.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE name = 'page'")
    return cur.fetchone()


PAGES = {  # as app/invoices/queries.page() asks for them
    "first page": ({}, None),
    "past a cursor": ({}, (datetime(2026, 1, 1, 12, tzinfo=UTC), _user(0))),
    "one status": ({"i.status =": "pending"}, None),
    "one payer": ({"i.payer_id =": _user(7)}, None),
}


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("guarded", [False, True])
def test_the_invoices_list_page_is_planned_once(big_invoices, page: str,
                                                guarded: bool) -> None:
    filters, after = PAGES[page]
    sql, params = newest_first(SELECT_INVOICE, created="i.created_at", key="i.id",
                               filters=filters, after=after, limit=50)
    if guarded:  # as a request sends it: carrying its caller's token check
        guard = Guard(cte=auth_queries.GUARD, params=(None, _user(0), 0, "no-such-jti"),
                      settle=lambda _: None, check_alone=None)  # type: ignore[arg-type]
        sql, params = wrap(sql, params, guard)
    generic, custom = _plans(big_invoices, sql, params)
    # PostgreSQL makes five custom plans first, then keeps the generic one if it is no
    # dearer; planned every time, this would be 0 and 12.
    assert generic >= 6 and custom <= 6, (generic, custom, sql)
