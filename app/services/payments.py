"""The ledger: payments, refunds and failed attempts, exact under any concurrency.

A payment or refund is one SQL statement: it locks the invoice row, checks the rule,
inserts the immutable transaction row and adds it to the invoice's sums. PostgreSQL holds
the row lock only while that statement and its commit run, with no round trip to Python
in between, so concurrent payments on one invoice queue in the database and each sees the
sums the previous one left. The CHECK constraints of migrations/0001 back the rule up.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from app import metrics
from app.db import db, with_retries
from app.errors import AmountExceedsDue, AmountExceedsRefundable, Conflict, NotFound
from app.models import utcnow
from app.money import format_minor
from app.pagination import decode_cursor, encode_cursor
from app.schemas import Page, TransactionOut
from app.services.invoices import InvoiceNotFound, _amount_minor

Kind = Literal["payment", "refund"]
Source = Literal["api", "webhook"]


class TransactionNotFound(NotFound):
    code = "transaction_not_found"


class InvoiceChanged(Conflict):
    code = "invoice_changed"


# Parameters: invoice id, currency, amount, kind, then the new row's columns.
_MOVE_MONEY_SQL = """
WITH p AS (
    SELECT %s::uuid AS invoice_id, %s::text AS currency, %s::bigint AS amount,
           %s::text AS kind, %s::uuid AS id, %s::text AS payment_mode,
           %s::timestamptz AS payment_date, %s::text AS reference, %s::text AS source,
           %s::text AS event_id, %s::timestamptz AS created_at
), inv AS (
    SELECT i.id, i.amount, i.amount_recovered, i.amount_refunded, i.currency
    FROM invoice i, p WHERE i.id = p.invoice_id
    FOR UPDATE OF i
), ok AS (
    SELECT inv.id FROM inv, p
    WHERE inv.currency = p.currency
      AND CASE WHEN p.kind = 'payment' THEN p.amount <= inv.amount - inv.amount_recovered
               ELSE p.amount <= inv.amount_recovered - inv.amount_refunded END
), ins AS (
    INSERT INTO invoice_transaction (id, invoice_id, kind, status, amount, currency,
        payment_mode, payment_date, reference, source, event_id, created_at)
    SELECT p.id, ok.id, p.kind, 'succeeded', p.amount, p.currency, p.payment_mode,
           p.payment_date, p.reference, p.source, p.event_id, p.created_at
    FROM ok, p
    RETURNING invoice_id
), upd AS (
    UPDATE invoice i SET
        amount_recovered = i.amount_recovered
            + CASE WHEN p.kind = 'payment' THEN p.amount ELSE 0 END,
        amount_refunded = i.amount_refunded
            + CASE WHEN p.kind = 'refund' THEN p.amount ELSE 0 END,
        last_attempt_failed = CASE WHEN p.kind = 'payment' THEN false
                                   ELSE i.last_attempt_failed END,
        updated_at = p.created_at
    FROM ins, p WHERE i.id = ins.invoice_id
    RETURNING i.id
)
SELECT inv.amount, inv.amount_recovered, inv.amount_refunded, inv.currency,
       EXISTS (SELECT 1 FROM upd) AS applied
FROM inv
"""

_FAILED_ATTEMPT_SQL = """
WITH inv AS (
    UPDATE invoice SET last_attempt_failed = true, updated_at = %s
    WHERE id = %s RETURNING id, currency
)
INSERT INTO invoice_transaction (id, invoice_id, kind, status, amount, currency,
    payment_mode, payment_date, reference, source, event_id, created_at)
SELECT %s, inv.id, 'payment', 'failed', %s, inv.currency, %s, %s, %s, %s, %s, %s FROM inv
RETURNING currency
"""

_SELECT_TRANSACTION = """
SELECT id, invoice_id, kind, status, amount, currency, payment_mode, payment_date,
       reference, source, event_id, created_at
FROM invoice_transaction
"""


@dataclass(frozen=True)
class Movement:
    invoice_id: uuid.UUID
    amount: Decimal
    kind: Kind
    payment_mode: str
    payment_date: datetime | None = None
    reference: str | None = None
    source: Source = "api"
    event_id: str | None = None


def transaction_out(row: dict | object) -> TransactionOut:
    get = row.__getitem__  # asyncpg Record or dict
    cur = get("currency")
    return TransactionOut.model_construct(
        id=get("id"), invoice_id=get("invoice_id"), kind=get("kind"), status=get("status"),
        amount=format_minor(get("amount"), cur), currency=cur,
        payment_mode=get("payment_mode"), payment_date=get("payment_date"),
        reference=get("reference"), source=get("source"), event_id=get("event_id"),
        created_at=get("created_at"))


# invoice id -> currency. A currency changes only while no money has moved, and the
# ledger statement re-checks it under the row lock, so a stale entry costs one retry, never
# a wrong amount. Saves a round trip on every payment to an invoice this worker has seen.
_currencies: OrderedDict[uuid.UUID, str] = OrderedDict()
_CURRENCY_CACHE_SIZE = 50_000


async def _invoice_currency(invoice_id: uuid.UUID, *, fresh: bool = False) -> str:
    if not fresh and invoice_id in _currencies:
        _currencies.move_to_end(invoice_id)
        return _currencies[invoice_id]
    row = (await db.aexecute_sql(
        "SELECT currency FROM invoice WHERE id = %s", (invoice_id,))).fetchone()
    if row is None:
        _currencies.pop(invoice_id, None)
        raise InvoiceNotFound(f"no invoice with id {invoice_id}")
    _currencies[invoice_id] = row[0]
    if len(_currencies) > _CURRENCY_CACHE_SIZE:
        _currencies.popitem(last=False)
    return row[0]


async def move_money(*, movement: Movement) -> TransactionOut:
    """Record a succeeded payment or a refund, or refuse it and record nothing."""
    try:
        return await _move_money(movement, await _invoice_currency(movement.invoice_id))
    except InvoiceChanged:
        # Our cached currency was stale: read it again and try once more.
        fresh = await _invoice_currency(movement.invoice_id, fresh=True)
        return await _move_money(movement, fresh)


async def _move_money(movement: Movement, currency: str) -> TransactionOut:
    amount = _amount_minor(movement.amount, currency)
    now = utcnow()
    row = {
        "id": uuid.uuid4(), "invoice_id": movement.invoice_id, "kind": movement.kind,
        "status": "succeeded", "amount": amount, "currency": currency,
        "payment_mode": movement.payment_mode, "payment_date": movement.payment_date or now,
        "reference": movement.reference, "source": movement.source,
        "event_id": movement.event_id, "created_at": now,
    }
    # One statement: outside a transaction it commits by itself, so the invoice's row
    # lock lasts exactly as long as the database work.
    params = (movement.invoice_id, currency, amount, movement.kind, row["id"],
              row["payment_mode"], row["payment_date"], row["reference"], row["source"],
              row["event_id"], now)
    result = (await with_retries(lambda: db.aexecute_sql(_MOVE_MONEY_SQL, params),
                                 atomic=False)).fetchone()
    if result is None:
        _currencies.pop(movement.invoice_id, None)
        raise InvoiceNotFound(f"no invoice with id {movement.invoice_id}")
    if not result["applied"]:
        _refuse(movement, amount, currency, result)
    metrics.record_movement(movement.kind, currency, movement.source, amount)
    return transaction_out(row)


def _refuse(movement: Movement, amount: int, expected_currency: str, inv: object) -> None:
    get = inv.__getitem__
    currency = get("currency")
    if currency != expected_currency:
        raise InvoiceChanged("the invoice's currency changed meanwhile; retry the request")
    if movement.kind == "payment":
        due = get("amount") - get("amount_recovered")
        raise AmountExceedsDue(
            f"payment of {format_minor(amount, currency)} exceeds the amount due "
            f"{format_minor(due, currency)}")
    refundable = get("amount_recovered") - get("amount_refunded")
    raise AmountExceedsRefundable(
        f"refund of {format_minor(amount, currency)} exceeds the refundable amount "
        f"{format_minor(refundable, currency)}")


async def record_failed_attempt(
    *, invoice_id: uuid.UUID, amount: Decimal | None, payment_mode: str,
    reference: str | None, event_id: str | None,
) -> TransactionOut:
    """A payment attempt the provider reports as failed: recorded, no money moves."""
    currency = await _invoice_currency(invoice_id)
    minor = _amount_minor(amount, currency) if amount is not None else 0
    now = utcnow()
    row = {
        "id": uuid.uuid4(), "invoice_id": invoice_id, "kind": "payment", "status": "failed",
        "amount": minor, "currency": currency, "payment_mode": payment_mode,
        "payment_date": now, "reference": reference, "source": "webhook",
        "event_id": event_id, "created_at": now,
    }
    params = (now, invoice_id, row["id"], minor, payment_mode, now, reference, "webhook",
              event_id, now)
    result = (await with_retries(lambda: db.aexecute_sql(_FAILED_ATTEMPT_SQL, params),
                                 atomic=False)).fetchone()
    if result is None:
        raise InvoiceNotFound(f"no invoice with id {invoice_id}")
    row["currency"] = result[0]
    return transaction_out(row)


async def get_transaction(*, transaction_id: uuid.UUID) -> TransactionOut:
    row = (await db.aexecute_sql(_SELECT_TRANSACTION + " WHERE id = %s",
                                 (transaction_id,))).fetchone()
    if row is None:
        raise TransactionNotFound(f"no transaction with id {transaction_id}")
    return transaction_out(row)


async def list_for_invoice(*, invoice_id: uuid.UUID, limit: int,
                           cursor: str | None) -> Page[TransactionOut]:
    """Oldest first."""
    await _invoice_currency(invoice_id)  # 404 for an unknown invoice
    where, params = "invoice_id = %s", [invoice_id]
    if cursor:
        where += " AND (created_at, id) > (%s, %s)"
        params.extend(decode_cursor(cursor))
    rows = (await db.aexecute_sql(
        _SELECT_TRANSACTION + f" WHERE {where} ORDER BY created_at, id LIMIT %s",
        (*params, limit + 1))).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[TransactionOut](
        data=[transaction_out(r) for r in rows],
        next_cursor=encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None)
