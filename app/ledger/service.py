"""Invoice transactions: payments, refunds and failed attempts, exact under any concurrency.

A payment or refund is one SQL statement (RECORD_TRANSACTION in queries.py): an UPDATE of
the invoice row that checks the rule in its own WHERE clause and adds the amount, and an
INSERT of the immutable ledger row fed by that UPDATE's RETURNING.

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
refundable, void). If that fresh state would accept the movement after all, the invoice changed
in between, and the statement runs again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.auth.queries import caller_params
from app.auth.service import authenticate_admin
from app.auth.tokens import TokenClaims
from app.db.models import utcnow
from app.errors import Conflict, NotFound
from app.invoices.service import InvoiceNotFound, InvoiceVoid
from app.ledger import queries
from app.ledger.schemas import Kind, Source, TransactionOut
from app.money import MAX_EXPONENT, format_minor, has_at_most_decimals, minor_units
from app.ops import metrics
from app.pagination import decode_cursor, page_json

# A refusal that the invoice's fresh state does not explain means it changed in between;
# after this many statements in a row, the client is told to retry.
ATTEMPTS = 4


class TransactionNotFound(NotFound, code="transaction_not_found"): ...
class AmountExceedsDue(Conflict, code="amount_exceeds_due"): ...
class AmountExceedsRefundable(Conflict, code="amount_exceeds_refundable"): ...
class InvoiceChanged(Conflict, code="invoice_changed"):
    retry_after = 1  # the same request may simply be sent again


@dataclass(frozen=True)
class NewTransaction:
    """A payment or refund to record; the row's own columns, by name."""

    invoice_id: uuid.UUID
    amount: Decimal
    kind: Kind
    payment_mode: str
    payment_date: datetime | None = None
    reference: str | None = None
    source: Source = "api"
    event_id: str | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)


def transaction_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A transaction row as the API shows it: TransactionOut's fields in its order, as
    plain values that app.http.responses encodes to the bytes the model would."""
    cur = row["currency"]
    return {"id": row["id"], "invoice_id": row["invoice_id"], "kind": row["kind"],
            "status": row["status"], "amount": format_minor(row["amount"], cur),
            "currency": cur, "payment_mode": row["payment_mode"],
            "payment_date": row["payment_date"], "reference": row["reference"],
            "source": row["source"], "event_id": row["event_id"],
            "created_at": row["created_at"]}


def transaction_out(row: Mapping[str, Any]) -> TransactionOut:
    return TransactionOut.model_construct(**transaction_json(row))


@dataclass(frozen=True)
class Recorded:
    transaction: TransactionOut
    invoice: dict[str, Any]  # the invoice's sums, status and updated_at after it


async def record_transaction(*, new: NewTransaction,
                             admin: TokenClaims | None = None) -> TransactionOut:
    """Record a succeeded payment or a refund, or refuse it and record nothing. With
    `admin`, a payment's statement also checks that token's account (401, 403)."""
    return (await record(new=new, admin=admin)).transaction


async def record(*, new: NewTransaction, admin: TokenClaims | None = None) -> Recorded:
    """record_transaction(), with what it did to the invoice."""
    now = utcnow()
    row = {**vars(new), "status": "succeeded", "created_at": now,
           "payment_date": new.payment_date or now}
    if new.kind == "refund" and new.source == "api":
        statement = queries.RECORD_REFUND_TO_CREDIT
    elif admin is not None and new.kind == "payment":
        statement = queries.RECORD_PAYMENT_CHECKING_CALLER
        row.update(caller_params(admin))
    else:
        statement = queries.RECORD_TRANSACTION
    if admin is not None and statement is not queries.RECORD_PAYMENT_CHECKING_CALLER:
        await authenticate_admin(claims=admin)
    for _ in range(ATTEMPTS):
        # More decimals than any currency has: no statement can accept it (and PostgreSQL's
        # numeric need not be asked to hold an absurd exponent).
        if has_at_most_decimals(new.amount, MAX_EXPONENT):
            moved = await queries.run(statement, row)
            if moved is not None:
                row.update(amount=moved["amount"], currency=moved["currency"])
                metrics.record_transaction(new.kind, row["currency"], new.source,
                                           row["amount"])
                if moved["returned_to_credit"]:
                    metrics.record_credit("granted", row["currency"],
                                          moved["returned_to_credit"])
                return Recorded(transaction_out(row), {
                    "amount_recovered": moved["invoice_recovered"],
                    "amount_refunded": moved["invoice_refunded"],
                    "status": moved["invoice_status"],
                    "updated_at": moved["invoice_updated_at"]})
        if statement is queries.RECORD_PAYMENT_CHECKING_CALLER:
            await authenticate_admin(claims=admin)  # the first reason it may have refused
        await _explain_refusal(new.invoice_id, new.amount, new.kind, new.source)
    raise InvoiceChanged("the invoice kept changing while this was being recorded; retry")


async def record_failed_attempt(
    *, invoice_id: uuid.UUID, amount: Decimal | None, payment_mode: str,
    reference: str | None, event_id: str | None,
) -> TransactionOut:
    """A payment attempt the provider reports as failed: recorded, no money moves."""
    row: dict[str, Any] = {
        "id": uuid.uuid4(), "invoice_id": invoice_id, "kind": "payment", "status": "failed",
        "amount": amount, "payment_mode": payment_mode, "payment_date": None,
        "reference": reference, "source": "webhook", "event_id": event_id,
        "created_at": utcnow()}
    for _ in range(ATTEMPTS):
        if amount is None or has_at_most_decimals(amount, MAX_EXPONENT):
            recorded = await queries.run(queries.RECORD_FAILED_ATTEMPT, row)
            if recorded is not None:
                row.update(amount=recorded["amount"], currency=recorded["currency"],
                           payment_date=row["created_at"])
                return transaction_out(row)
        await _explain_refusal(invoice_id, amount, None)
    raise InvoiceChanged("the invoice kept changing while this was being recorded; retry")


async def _explain_refusal(invoice_id: uuid.UUID, amount: Decimal | None,
                           kind: Kind | None, source: Source = "api") -> None:
    """Raise the reason why the invoice, as it is now, refuses this amount (as a payment,
    a refund, or with `kind` None only its scale); return if it would accept it: it
    changed after the statement ran."""
    now = await queries.sums(invoice_id)
    if now is None:
        raise InvoiceNotFound(f"no invoice with id {invoice_id}")
    if now["voided_at"] is not None and kind is not None:
        raise InvoiceVoid(f"invoice {invoice_id} is void: it takes no {kind}")
    if amount is None:
        return
    currency = now["currency"]
    minor = minor_units(amount, currency)  # 422 when it does not fit the currency
    limits = {"payment": (now["amount"] - now["amount_recovered"], AmountExceedsDue,
                          "the amount due"),
              "refund": (now["amount_recovered"] - now["amount_refunded"],
                         AmountExceedsRefundable, "the refundable amount")}
    if source == "webhook":  # the provider refunds only what it was paid (not credit)
        limits["refund"] = (
            now["amount_recovered"] - now["amount_paid_from_credit"]
            - (now["amount_refunded"] - now["amount_returned_to_credit"]),
            AmountExceedsRefundable, "what the provider was paid and has not refunded")
    if kind in limits:
        limit, refusal, what = limits[kind]
        if minor > limit:
            raise refusal(f"{kind} of {format_minor(minor, currency)} exceeds {what} "
                          f"{format_minor(limit, currency)}")


async def get_transaction(*, transaction_id: uuid.UUID) -> TransactionOut:
    row = await queries.one(transaction_id)
    if row is None:
        raise TransactionNotFound(f"no transaction with id {transaction_id}")
    return transaction_out(row)


async def list_for_invoice(*, invoice_id: uuid.UUID, limit: int,
                           cursor: str | None) -> dict[str, Any]:
    """Oldest first, as plain values (app.pagination.page_json)."""
    rows = await queries.page(invoice_id, limit, decode_cursor(cursor) if cursor else None)
    if not rows and not await queries.invoice_exists(invoice_id):
        raise InvoiceNotFound(f"no invoice with id {invoice_id}")
    return page_json(rows, limit, transaction_json)
