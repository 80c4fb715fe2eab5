"""The credit domain's SQL: balances and the credit ledger, each change with its event.

Every writer locks an invoice (if any) before a balance row, so two never wait on each
other in opposite orders."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from app.db.connection import db
from app.db.sql import Statement, newest_first
from app.events.queries import FAN_OUT, NEW_EVENT_ID

_ENTRY_EVENT = f"""new_events AS (
    INSERT INTO events (id, type, invoice_id, created_at, data)
    SELECT {NEW_EVENT_ID}, :event_type, entry.invoice_id, :created_at,
           jsonb_build_object('credit', to_jsonb(entry) || jsonb_build_object(
               'balance', (SELECT balance FROM balance)))
    FROM entry
    RETURNING seq, type, invoice_id, created_at
), {FAN_OUT}"""

# Raises the balance by the inserted row's amount, or makes it (the ledger's refunds use
# it too, app/ledger/queries.py).
RAISE_BALANCE = """ON CONFLICT (user_id, currency) DO UPDATE
        SET balance = credit_balances.balance + EXCLUDED.balance,
            updated_at = EXCLUDED.updated_at
    RETURNING balance"""

# Credit in: the balance row made or raised, the entry, its event.
_ADD = Statement(f"""
WITH balance AS (
    INSERT INTO credit_balances (user_id, currency, balance, updated_at)
    VALUES (:user_id, :currency, :amount, :created_at)
    {RAISE_BALANCE}
), entry AS (
    INSERT INTO credit_entries (id, user_id, currency, amount, source, invoice_id,
                                transaction_id, reason, created_at)
    SELECT :id, :user_id, :currency, :amount, :source, :invoice_id, :transaction_id,
           :reason, :created_at FROM balance
    RETURNING *
), {_ENTRY_EVENT}
SELECT entry.*, (SELECT balance FROM balance) AS balance FROM entry
""")

# Credit out: only if the balance (whose row the caller has locked) covers it.
_SPEND = Statement(f"""
WITH balance AS (
    UPDATE credit_balances SET balance = balance - :spent, updated_at = :created_at
    WHERE user_id = :user_id AND currency = :currency AND balance >= :spent
    RETURNING balance
), entry AS (
    INSERT INTO credit_entries (id, user_id, currency, amount, source, invoice_id,
                                transaction_id, reason, created_at)
    SELECT :id, :user_id, :currency, -:spent, 'applied', :invoice_id, :transaction_id,
           NULL, :created_at FROM balance
    RETURNING *
), {_ENTRY_EVENT}
SELECT entry.*, (SELECT balance FROM balance) AS balance FROM entry
""")

_COLUMNS = ("id, user_id, currency, amount, source, invoice_id, transaction_id, reason, "
            "created_at")


async def add(values: dict[str, Any]) -> Any:
    return (await db.aexecute_sql(_ADD.text, _ADD.params(
        {**values, "event_type": "credit.granted"}))).fetchone()


async def spend(values: dict[str, Any]) -> Any | None:
    return (await db.aexecute_sql(_SPEND.text, _SPEND.params(
        {**values, "event_type": "credit.applied"}))).fetchone()


async def locked_balance(user_id: uuid.UUID, currency: str) -> int:
    """The balance, its row locked until the transaction ends (0 if there is none yet)."""
    row = (await db.aexecute_sql(
        "SELECT balance FROM credit_balances WHERE user_id = %s AND currency = %s "
        "FOR UPDATE", (user_id, currency))).fetchone()
    return int(row["balance"]) if row else 0


async def balances(user_id: uuid.UUID) -> list[Any]:
    return (await db.aexecute_sql(
        "SELECT currency, balance FROM credit_balances WHERE user_id = %s AND balance > 0 "
        "ORDER BY currency", (user_id,))).fetchall()


async def entries(user_id: uuid.UUID, limit: int,
                  after: tuple[datetime, uuid.UUID] | None) -> list[Any]:
    """Newest first, `limit + 1` rows."""
    sql, params = newest_first(f"SELECT {_COLUMNS} FROM credit_entries", created="created_at",
                               key="id", filters={"user_id =": user_id}, after=after,
                               limit=limit)
    return (await db.aexecute_sql(sql, params)).fetchall()


async def locked_invoice(invoice_id: uuid.UUID) -> Any | None:
    """The invoice's row, locked until the transaction ends: what is due, who pays."""
    return (await db.aexecute_sql(
        "SELECT id, payer_id, currency, amount, amount_recovered, voided_at "
        "FROM invoices WHERE id = %s FOR UPDATE", (invoice_id,))).fetchone()


async def user_exists(user_id: uuid.UUID) -> bool:
    return (await db.aexecute_sql("SELECT 1 FROM users WHERE id = %s",
                                  (user_id,))).fetchone() is not None
