"""The invoices domain's SQL."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from peewee import SQL, fn

from app.db.connection import db
from app.db.models import Invoice, InvoiceTransaction, User
from app.db.sql import Statement, newest_first


# An invoice with its parties' names. Written out: it is the whole of GET /invoices/{id}
# and of every list page (docs/PERFORMANCE.md, "GET /invoices/{id}" and "list" scenarios).
def select_invoice(source: str = "invoices i", join: str = "JOIN") -> str:
    """SELECT_INVOICE over another `source` of invoice rows named `i` (a locking subquery,
    say), joined to its parties with `join`."""
    return f"""
SELECT i.id, i.payer_id, i.receiver_id, i.amount, i.currency, i.description, i.due_date,
       i.status, i.amount_recovered, i.amount_refunded, i.created_at, i.updated_at,
       i.voided_at,
       p.username AS payer_username, p.email AS payer_email,
       r.username AS receiver_username, r.email AS receiver_email
FROM {source}
{join} users p ON p.id = i.payer_id
{join} users r ON r.id = i.receiver_id
"""


SELECT_INVOICE = select_invoice()
# The whole of GET /invoices/{id}; the caller's token check rides on it (app/db/guard.py).
ONE = Statement(SELECT_INVOICE + " WHERE i.id = :id")

# List filters (app/db/sql.newest_first), each taking today's date: overdue means due
# before today, something still due, not void.
OVERDUE = ("i.voided_at IS NULL AND i.amount_recovered < i.amount AND i.due_date < %s")
NOT_OVERDUE = ("NOT COALESCE(i.voided_at IS NULL AND i.amount_recovered < i.amount "
               "AND i.due_date < %s, false)")


async def one(invoice_id: uuid.UUID) -> Any | None:
    return (await db.aexecute_sql(ONE.text, ONE.params(id=invoice_id))).fetchone()


async def page(limit: int, after: tuple[datetime, uuid.UUID] | None,
               filters: dict[str, Any]) -> list[Any]:
    """Newest first, `limit + 1` rows; `filters` maps column conditions to values."""
    sql, params = newest_first(SELECT_INVOICE, created="i.created_at", key="i.id",
                               filters=filters, after=after, limit=limit)
    return (await db.aexecute_sql(sql, params)).fetchall()


async def active_by_id(user_ids: list[uuid.UUID]) -> dict[uuid.UUID, bool]:
    rows = await db.list(User.select(User.id, User.is_active).where(User.id.in_(user_ids)))
    return {user.id: user.is_active for user in rows}


async def insert(values: dict[str, Any]) -> None:
    await Invoice.insert(**values).aexecute()


async def lock(invoice_id: uuid.UUID) -> bool:
    rows = await db.list(Invoice.select(Invoice.id).where(Invoice.id == invoice_id)
                         .for_update())
    return bool(rows)


async def is_marked_uncollectible(invoice_id: uuid.UUID) -> bool:
    rows = await db.list(Invoice.select(Invoice.id).where(
        (Invoice.id == invoice_id) & Invoice.uncollectible_at.is_null(False)))
    return bool(rows)


async def update(invoice_id: uuid.UUID, values: dict[str, Any]) -> None:
    await Invoice.update(**values).where(Invoice.id == invoice_id).aexecute()


async def delete_if_no_transactions(invoice_id: uuid.UUID) -> bool:
    """Also not when credit came from it (a provider's payment on it after it was voided):
    the credit ledger keeps its invoice."""
    has_rows = InvoiceTransaction.select(SQL("1")).where(InvoiceTransaction.invoice == invoice_id)
    has_credit = SQL("SELECT 1 FROM credit_entries WHERE invoice_id = %s", (invoice_id,))
    deleted = await Invoice.delete().where(
        (Invoice.id == invoice_id) & ~fn.EXISTS(has_rows) & ~fn.EXISTS(has_credit)).aexecute()
    return bool(deleted)
