"""The ledger's SQL. The two statements that move money are written out: they are the whole
database cost of a payment and of a provider event, and bench/ runs them under pgbench
as they are here (docs/PERFORMANCE.md, the payment and webhook scenarios)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from app.auth.queries import CALLER
from app.credit.queries import RAISE_BALANCE
from app.db.connection import db
from app.db.models import Invoice, InvoiceTransaction
from app.db.sql import Statement, oldest_first
from app.events.queries import FAN_OUT, NEW_EVENT_ID

# The invoice as the API shows it (with its parties), from the row `moved` just wrote.
# Not app/invoices/queries.py's SELECT_INVOICE: inside this statement a read of `invoices`
# sees the row as it was before the update.
INVOICE_SNAPSHOT = """(to_jsonb(moved) - 'moved_amount' || (
    SELECT jsonb_build_object('payer_username', p.username, 'payer_email', p.email,
                              'receiver_username', r.username, 'receiver_email', r.email)
    FROM users p, users r WHERE p.id = moved.payer_id AND r.id = moved.receiver_id))"""

# What a refund returns to credit (moved.last_credit_return > 0): the payer's balance
# (locked after the invoice, as everywhere) and the credit ledger's row.
CREDIT_RETURN = f"""returned AS (
    INSERT INTO credit_balances (user_id, currency, balance, updated_at)
    SELECT moved.payer_id, moved.currency, moved.last_credit_return, :created_at
    FROM moved WHERE moved.last_credit_return > 0
    {RAISE_BALANCE}
), credit_entry AS (
    INSERT INTO credit_entries (id, user_id, currency, amount, source, invoice_id,
                                transaction_id, created_at)
    SELECT gen_random_uuid(), moved.payer_id, moved.currency, moved.last_credit_return,
           'refund', moved.id, :id, :created_at
    FROM moved, returned WHERE moved.last_credit_return > 0
    RETURNING *
)"""

# A payment or a refund: the invoice row is updated only if the rule allows, and the ledger
# row is inserted only if it was (app/ledger/service.py explains why this shape is right
# under READ COMMITTED), with its events and their deliveries (app/events/queries.py) in
# the same statement. `amount` is an exact decimal; the minor units come from the
# currency joined to the row version being updated.
# An admin's refund returns to credit what of it came from credit (docs/API.md); SET sees
# the locked row as it was, and RETURNING shows the new values, hence the column. (The
# provider's refunds went back by card: none returns to credit.)
_RETURN_TO_CREDIT = """last_credit_return = LEAST(to_minor_units(:amount, c.exponent),
            i.amount_paid_from_credit - i.amount_returned_to_credit),
        amount_returned_to_credit = i.amount_returned_to_credit + LEAST(
            to_minor_units(:amount, c.exponent),
            i.amount_paid_from_credit - i.amount_returned_to_credit),"""
_CREDIT_GRANTED = """, (3, 'credit.granted', (SELECT jsonb_build_object('credit', to_jsonb(ce)
            || jsonb_build_object('balance', (SELECT balance FROM returned)))
            FROM credit_entry ce))"""


# What the statement answers: the transaction's amount and currency, and the invoice's new
# state too (a provider event answers with it without reading it again).
MOVED = """
SELECT recorded.amount, recorded.currency, moved.last_credit_return AS returned_to_credit,
       moved.amount_recovered AS invoice_recovered, moved.amount_refunded AS invoice_refunded,
       moved.status AS invoice_status, moved.updated_at AS invoice_updated_at
FROM recorded, moved"""


def record_statement(*, returns_credit: bool = False, checks_caller: bool = False,
                     first: str = "", only_if: str = "", then: str = "",
                     answer: str = MOVED) -> Statement:
    """The ledger statement. For a caller that builds on it (app/webhooks/queries.py):
    `first`, CTEs before the movement (each followed by a comma); `only_if`, a condition
    the movement also needs; `then`, CTEs after it (each preceded by one); `answer`, the
    final SELECT."""
    credit = CREDIT_RETURN + ", " if returns_credit else ""
    caller = CALLER + ", " if checks_caller else ""
    gate = f"\n      AND {only_if}" if only_if else ""
    admin = "AND EXISTS (SELECT 1 FROM caller WHERE caller.role = 'admin')" \
        if checks_caller else ""
    return Statement(f"""
WITH {first}{caller}moved AS (
    UPDATE invoices i SET
        amount_recovered = i.amount_recovered + CASE WHEN :kind = 'payment'
            THEN to_minor_units(:amount, c.exponent) ELSE 0 END,
        amount_refunded = i.amount_refunded + CASE WHEN :kind = 'refund'
            THEN to_minor_units(:amount, c.exponent) ELSE 0 END,
        last_attempt_failed = i.last_attempt_failed AND :kind <> 'payment',
        amount_paid_from_credit = i.amount_paid_from_credit + CASE
            WHEN :kind = 'payment' AND :source = 'credit'
            THEN to_minor_units(:amount, c.exponent) ELSE 0 END,
        {_RETURN_TO_CREDIT if returns_credit else "last_credit_return = 0,"}
        updated_at = :created_at
    FROM currencies c
    WHERE i.id = :invoice_id AND c.code = i.currency AND i.voided_at IS NULL
      AND to_minor_units(:amount, c.exponent) <= CASE WHEN :kind = 'payment'
          THEN i.amount - i.amount_recovered
          -- the provider refunds only what it was paid, never what credit paid
          WHEN :source = 'webhook' THEN i.amount_recovered - i.amount_paid_from_credit
               - (i.amount_refunded - i.amount_returned_to_credit)
          ELSE i.amount_recovered - i.amount_refunded END
      {admin}{gate}
    RETURNING i.*, to_minor_units(:amount, c.exponent) AS moved_amount
), recorded AS (
    INSERT INTO invoice_transactions (id, invoice_id, kind, status, amount, currency,
        payment_mode, payment_date, reference, source, event_id, created_at)
    SELECT :id, moved.id, :kind, 'succeeded', moved.moved_amount, moved.currency,
           :payment_mode, :payment_date, :reference, :source, :event_id, :created_at
    FROM moved
    RETURNING *
), {credit}new_events AS (
    -- the movement's event, invoice.completed if this payment completed the invoice, and
    -- credit.granted if this refund returned credit
    INSERT INTO events (id, type, invoice_id, created_at, data)
    SELECT {NEW_EVENT_ID}, e.type, recorded.invoice_id, :created_at, e.data
    FROM recorded, moved, LATERAL (VALUES
        (1, CASE WHEN :kind = 'payment' THEN 'payment.succeeded' ELSE 'refund.succeeded' END,
         jsonb_build_object('transaction', to_jsonb(recorded))),
        (2, 'invoice.completed', CASE WHEN :kind = 'payment' AND moved.status = 'completed'
         THEN jsonb_build_object('invoice', {INVOICE_SNAPSHOT}) END)
        {_CREDIT_GRANTED if returns_credit else ""}
    ) AS e (n, type, data)
    WHERE e.data IS NOT NULL
    ORDER BY e.n
    RETURNING seq, type, invoice_id, created_at
), {FAN_OUT}{then}
{answer}
""")


# Payments (API, provider, credit) and the provider's refunds; and an admin's refunds,
# which also return to credit what came from it (the one place the credit CTEs run, so
# the hot path of a payment does not carry them).
RECORD_TRANSACTION = record_statement()
# An API payment without an Idempotency-Key: the admin's token check (app/auth/queries.py)
# in the same statement, so the request is one round trip. Nothing moves unless it passes.
RECORD_PAYMENT_CHECKING_CALLER = record_statement(checks_caller=True)
RECORD_REFUND_TO_CREDIT = record_statement(returns_credit=True)


# A payment attempt the provider reports as failed: marked on the invoice, recorded, no
# money moves. Its amount, if given, must fit the invoice's currency.
RECORD_FAILED_ATTEMPT = Statement(f"""
WITH attempt AS (
    UPDATE invoices i SET last_attempt_failed = true, updated_at = :created_at
    FROM currencies c
    WHERE i.id = :invoice_id AND c.code = i.currency
      AND (:amount::numeric IS NULL OR to_minor_units(:amount, c.exponent) IS NOT NULL)
    RETURNING i.id, i.currency, COALESCE(to_minor_units(:amount, c.exponent), 0) AS amount
), recorded AS (
    INSERT INTO invoice_transactions (id, invoice_id, kind, status, amount, currency,
        payment_mode, payment_date, reference, source, event_id, created_at)
    SELECT :id, attempt.id, 'payment', 'failed', attempt.amount, attempt.currency,
           :payment_mode, :created_at, :reference, 'webhook', :event_id, :created_at
    FROM attempt
    RETURNING *
), new_events AS (
    INSERT INTO events (id, type, invoice_id, created_at, data)
    SELECT {NEW_EVENT_ID}, 'payment.failed', recorded.invoice_id, :created_at,
           jsonb_build_object('transaction', to_jsonb(recorded))
    FROM recorded
    RETURNING seq, type, invoice_id, created_at
), {FAN_OUT}
SELECT amount, currency FROM recorded
""")


# Every column, the foreign key under its column name (as the raw statements return it).
_COLUMNS = [field.alias("invoice_id") if field is InvoiceTransaction.invoice else field
            for field in InvoiceTransaction._meta.sorted_fields]


async def run(statement: Statement, values: dict[str, Any]) -> Any | None:
    return (await db.aexecute_sql(statement.text, statement.params(values))).fetchone()


async def sums(invoice_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await db.list(Invoice.select(
        Invoice.amount, Invoice.amount_recovered, Invoice.amount_refunded,
        Invoice.currency, Invoice.voided_at, Invoice.amount_paid_from_credit,
        Invoice.amount_returned_to_credit).where(Invoice.id == invoice_id).dicts())
    return rows[0] if rows else None


async def one(transaction_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await db.list(InvoiceTransaction.select(*_COLUMNS).where(
        InvoiceTransaction.id == transaction_id).dicts())
    return rows[0] if rows else None


# The same columns as raw SQL: peewee's conversion of 51 rows cost more than the rest of
# the request (docs/PERFORMANCE.md, "List pages as plain values").
_SELECT = ("SELECT " + ", ".join(f.column_name for f in InvoiceTransaction._meta.sorted_fields)
           + " FROM invoice_transactions")


async def page(invoice_id: uuid.UUID, limit: int,
               after: tuple[datetime, uuid.UUID] | None) -> list[Any]:
    """Oldest first, `limit + 1` rows."""
    sql, params = oldest_first(_SELECT, created="created_at", key="id",
                               filters={"invoice_id =": invoice_id}, after=after, limit=limit)
    return (await db.aexecute_sql(sql, params)).fetchall()


async def invoice_exists(invoice_id: uuid.UUID) -> bool:
    return bool(await db.list(Invoice.select(Invoice.id).where(Invoice.id == invoice_id)))
