"""The ledger: payments, refunds and failed attempts, exact under any concurrency.

A payment or refund is one SQL statement: an UPDATE of the invoice row that checks the rule
in its own WHERE clause and adds the amount, and an INSERT of the immutable ledger row fed
by that UPDATE's RETURNING. Outside a transaction it commits by itself, so the row lock
lasts exactly as long as the database work, with no round trip to Python in between.

Why this shape is right under READ COMMITTED: when the UPDATE finds the row locked by
another payment, it waits, and once that one commits PostgreSQL re-reads the newest version
of the row and evaluates the WHERE clause and the SET expressions again on it (the
EvalPlanQual re-check). The rule and the new sums are therefore always computed from the
same, newest row version, and the INSERT only sees the rows the UPDATE really changed.

The earlier shape locked the row in a `SELECT ... FOR UPDATE` CTE, checked the rule on what
that returned, and updated in a second CTE. The lock and the check saw the newest version,
but the second CTE's UPDATE could start from the older version of the statement's
snapshot: its sums were then one payment behind, and the CHECK constraint refused a valid
refund (SQLSTATE 23514). tests/test_races.py fires those races.

The amount goes to the database as an exact decimal and is turned into minor units by
`to_minor_units(amount, c.exponent)` (migrations/0002), where `c` is the currency of the
very row version being updated: the re-check also re-tests `c.code = i.currency` on the
newest version (with the currency row it joined first), so if the currency changed in the
meantime the row is left alone and the refusal path below finds out why. A currency
changed a moment earlier can never scale an amount.

When the statement changes nothing, a second statement reads the invoice as it is now and
says why (no such invoice, too many decimals for its currency, more than is due or
refundable). If that fresh state would accept the movement after all, the invoice changed
in between, and the statement runs again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from app import metrics
from app.db import db, with_retries
from app.errors import AmountExceedsDue, AmountExceedsRefundable, Conflict, NotFound
from app.models import utcnow
from app.money import MAX_EXPONENT, format_minor, has_at_most_decimals
from app.pagination import decode_cursor, encode_cursor
from app.schemas import Page, TransactionOut
from app.services.invoices import InvoiceNotFound, amount_minor

Kind = Literal["payment", "refund"]
Source = Literal["api", "webhook"]


class TransactionNotFound(NotFound):
    code = "transaction_not_found"


class InvoiceChanged(Conflict):
    code = "invoice_changed"


MOVE_MONEY_SQL = """
WITH moved AS (
    UPDATE invoice i SET
        amount_recovered = i.amount_recovered + CASE WHEN $4 = 'payment'
            THEN to_minor_units($3, c.exponent) ELSE 0 END,
        amount_refunded = i.amount_refunded + CASE WHEN $4 = 'refund'
            THEN to_minor_units($3, c.exponent) ELSE 0 END,
        last_attempt_failed = i.last_attempt_failed AND $4 <> 'payment',
        updated_at = $10
    FROM currency c
    WHERE i.id = $1 AND c.code = i.currency
      AND to_minor_units($3, c.exponent) <= CASE WHEN $4 = 'payment'
          THEN i.amount - i.amount_recovered ELSE i.amount_recovered - i.amount_refunded END
    RETURNING i.id, i.currency, to_minor_units($3, c.exponent) AS amount
)
INSERT INTO invoice_transaction (id, invoice_id, kind, status, amount, currency,
    payment_mode, payment_date, reference, source, event_id, created_at)
SELECT $2, moved.id, $4, 'succeeded', moved.amount, moved.currency, $5, $6, $7, $8, $9, $10
FROM moved
RETURNING amount, currency
"""

FAILED_ATTEMPT_SQL = """
WITH attempt AS (
    UPDATE invoice i SET last_attempt_failed = true, updated_at = $7
    FROM currency c
    WHERE i.id = $1 AND c.code = i.currency
      AND ($3::numeric IS NULL OR to_minor_units($3, c.exponent) IS NOT NULL)
    RETURNING i.id, i.currency, COALESCE(to_minor_units($3, c.exponent), 0) AS amount
)
INSERT INTO invoice_transaction (id, invoice_id, kind, status, amount, currency,
    payment_mode, payment_date, reference, source, event_id, created_at)
SELECT $2, attempt.id, 'payment', 'failed', attempt.amount, attempt.currency, $4, $7, $5,
       'webhook', $6, $7
FROM attempt
RETURNING amount, currency
"""

_CURRENT_SUMS_SQL = """
SELECT amount, amount_recovered, amount_refunded, currency FROM invoice WHERE id = $1
"""

# A refusal that the invoice's fresh state does not explain means it changed in between;
# after this many statements in a row, the client is told to retry.
_ATTEMPTS = 4

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


async def move_money(*, movement: Movement) -> TransactionOut:
    """Record a succeeded payment or a refund, or refuse it and record nothing."""
    now = utcnow()
    row = {
        "id": uuid.uuid4(), "invoice_id": movement.invoice_id, "kind": movement.kind,
        "status": "succeeded", "payment_mode": movement.payment_mode,
        "payment_date": movement.payment_date or now, "reference": movement.reference,
        "source": movement.source, "event_id": movement.event_id, "created_at": now,
    }
    params = (movement.invoice_id, row["id"], movement.amount, movement.kind,
              row["payment_mode"], row["payment_date"], row["reference"], row["source"],
              row["event_id"], now)
    for _ in range(_ATTEMPTS):
        # More decimals than any currency has: no statement can accept it (and PostgreSQL's
        # numeric need not be asked to hold an absurd exponent).
        if has_at_most_decimals(movement.amount, MAX_EXPONENT):
            moved = await _one_statement(MOVE_MONEY_SQL, params)
            if moved is not None:
                row.update(amount=moved["amount"], currency=moved["currency"])
                metrics.record_movement(movement.kind, row["currency"], movement.source,
                                        row["amount"])
                return transaction_out(row)
        await _explain_refusal(movement.invoice_id, movement.amount, movement.kind)
    raise InvoiceChanged("the invoice kept changing while this was being recorded; retry")


async def record_failed_attempt(
    *, invoice_id: uuid.UUID, amount: Decimal | None, payment_mode: str,
    reference: str | None, event_id: str | None,
) -> TransactionOut:
    """A payment attempt the provider reports as failed: recorded, no money moves."""
    now = utcnow()
    row = {
        "id": uuid.uuid4(), "invoice_id": invoice_id, "kind": "payment", "status": "failed",
        "payment_mode": payment_mode, "payment_date": now, "reference": reference,
        "source": "webhook", "event_id": event_id, "created_at": now,
    }
    params = (invoice_id, row["id"], amount, payment_mode, reference, event_id, now)
    for _ in range(_ATTEMPTS):
        if amount is None or has_at_most_decimals(amount, MAX_EXPONENT):
            recorded = await _one_statement(FAILED_ATTEMPT_SQL, params)
            if recorded is not None:
                row.update(amount=recorded["amount"], currency=recorded["currency"])
                return transaction_out(row)
        await _explain_refusal(invoice_id, amount, None)
    raise InvoiceChanged("the invoice kept changing while this was being recorded; retry")


async def _one_statement(sql: str, params: tuple) -> object | None:
    # Outside a transaction the statement commits by itself; inside one (webhooks,
    # idempotency keys) it is part of it, and a deadlock retries the whole transaction.
    cursor = await with_retries(lambda: db.aexecute_sql(sql, params), atomic=False)
    return cursor.fetchone()


async def _explain_refusal(invoice_id: uuid.UUID, amount: Decimal | None,
                           kind: Kind | None) -> None:
    """Raise the reason why the invoice, as it is now, refuses this amount (as a payment,
    a refund, or with `kind` None only its scale); return if it would accept it: it
    changed after the statement ran."""
    now = (await db.aexecute_sql(_CURRENT_SUMS_SQL, (invoice_id,))).fetchone()
    if now is None:
        raise InvoiceNotFound(f"no invoice with id {invoice_id}")
    if amount is None:
        return
    currency = now["currency"]
    minor = amount_minor(amount, currency)  # 422 when it does not fit the currency
    if kind == "payment":
        due = now["amount"] - now["amount_recovered"]
        if minor > due:
            raise AmountExceedsDue(
                f"payment of {format_minor(minor, currency)} exceeds the amount due "
                f"{format_minor(due, currency)}")
    elif kind == "refund":
        refundable = now["amount_recovered"] - now["amount_refunded"]
        if minor > refundable:
            raise AmountExceedsRefundable(
                f"refund of {format_minor(minor, currency)} exceeds the refundable amount "
                f"{format_minor(refundable, currency)}")


async def get_transaction(*, transaction_id: uuid.UUID) -> TransactionOut:
    row = (await db.aexecute_sql(_SELECT_TRANSACTION + " WHERE id = %s",
                                 (transaction_id,))).fetchone()
    if row is None:
        raise TransactionNotFound(f"no transaction with id {transaction_id}")
    return transaction_out(row)


async def list_for_invoice(*, invoice_id: uuid.UUID, limit: int,
                           cursor: str | None) -> Page[TransactionOut]:
    """Oldest first."""
    where, params = "invoice_id = %s", [invoice_id]
    if cursor:
        where += " AND (created_at, id) > (%s, %s)"
        params.extend(decode_cursor(cursor))
    rows = (await db.aexecute_sql(
        _SELECT_TRANSACTION + f" WHERE {where} ORDER BY created_at, id LIMIT %s",
        (*params, limit + 1))).fetchall()
    if not rows and not (await db.aexecute_sql(
            "SELECT EXISTS (SELECT 1 FROM invoice WHERE id = %s)", (invoice_id,))).fetchone()[0]:
        raise InvoiceNotFound(f"no invoice with id {invoice_id}")
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[TransactionOut](
        data=[transaction_out(r) for r in rows],
        next_cursor=encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None)
