"""Invoices: creation, reads, keyset-paginated lists, guarded changes and deletion."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from app.config import get_settings
from app.db import db, with_retries
from app.errors import Conflict, NotFound, ReadOnlyField, Unprocessable
from app.models import utcnow
from app.money import AmountError, exponent, format_minor, to_minor
from app.pagination import decode_cursor, encode_cursor
from app.schemas import (
    InvoiceCreate,
    InvoiceOut,
    InvoiceStatus,
    InvoiceUpdate,
    Page,
    Party,
)


class InvoiceNotFound(NotFound):
    code = "invoice_not_found"


class InvalidParty(Unprocessable):
    code = "invalid_party"


class AmountBelowPaid(Conflict):
    code = "amount_below_paid"


class MoneyHasMoved(Conflict):
    code = "money_has_moved"


class InvoiceHasTransactions(Conflict):
    code = "invoice_has_transactions"


SELECT_INVOICE = """
SELECT i.id, i.payer_id, i.receiver_id, i.amount, i.currency, i.description, i.due_date,
       i.status, i.amount_recovered, i.amount_refunded, i.created_at, i.updated_at,
       p.username AS payer_username, p.email AS payer_email,
       r.username AS receiver_username, r.email AS receiver_email
FROM invoice i
JOIN users p ON p.id = i.payer_id
JOIN users r ON r.id = i.receiver_id
"""


def invoice_out(row: Any) -> InvoiceOut:
    """An invoice row (with its parties' names) as the API shows it. The row comes from
    our own schema, so the model is built without validating it again."""
    cur = row["currency"]
    return InvoiceOut.model_construct(
        id=row["id"],
        payer_id=row["payer_id"],
        receiver_id=row["receiver_id"],
        payer=Party.model_construct(id=row["payer_id"], username=row["payer_username"],
                                    email=row["payer_email"]),
        receiver=Party.model_construct(id=row["receiver_id"],
                                       username=row["receiver_username"],
                                       email=row["receiver_email"]),
        amount=format_minor(row["amount"], cur),
        currency=cur,
        description=row["description"],
        due_date=row["due_date"],
        status=row["status"],
        amount_recovered=format_minor(row["amount_recovered"], cur),
        amount_refunded=format_minor(row["amount_refunded"], cur),
        amount_due=format_minor(row["amount"] - row["amount_recovered"], cur),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def load_invoice(invoice_id: uuid.UUID) -> InvoiceOut:
    cursor = await db.aexecute_sql(SELECT_INVOICE + " WHERE i.id = %s", (invoice_id,))
    row = cursor.fetchone()
    if row is None:
        raise InvoiceNotFound(f"no invoice with id {invoice_id}")
    return invoice_out(row)


def amount_minor(amount: Decimal, currency: str) -> int:
    try:
        return to_minor(amount, currency)
    except AmountError as exc:
        raise Unprocessable(str(exc), loc=["body", "amount"]) from None


def _same_amount(sent: Any, current: str) -> bool:
    try:
        return Decimal(str(sent)) == Decimal(current)
    except (InvalidOperation, ValueError):
        return False


def check_read_only(sent: dict[str, Any], current: InvoiceOut) -> None:
    """Read-only fields may be echoed back unchanged; any other value is refused."""
    for field, value in sent.items():
        now = getattr(current, field)
        same = value == now if field == "status" else _same_amount(value, now)
        if not same:
            raise ReadOnlyField(
                f"{field} is computed from the invoice's transactions and cannot be set "
                f"(it is {now!s})", loc=["body", field])


async def _check_parties(payer_id: uuid.UUID, receiver_id: uuid.UUID) -> None:
    if payer_id == receiver_id:
        raise InvalidParty("payer and receiver must be different users",
                           loc=["body", "receiver_id"])
    cursor = await db.aexecute_sql(
        "SELECT id, is_active FROM users WHERE id = ANY(%s::uuid[])", ([payer_id, receiver_id],))
    active = {row["id"]: row["is_active"] for row in cursor.fetchall()}
    for field, user_id in (("payer_id", payer_id), ("receiver_id", receiver_id)):
        if user_id not in active:
            raise InvalidParty(f"{field}: no user with id {user_id}", loc=["body", field])
        if not active[user_id]:
            raise InvalidParty(f"{field}: user {user_id} is deactivated", loc=["body", field])


async def create_invoice(*, data: InvoiceCreate) -> InvoiceOut:
    currency = data.currency or get_settings().default_currency
    amount = amount_minor(data.amount, currency)
    read_only = data.read_only_values()
    if read_only:
        zero = format_minor(0, currency)
        check_read_only(read_only, InvoiceOut.model_construct(
            status="pending", amount_recovered=zero, amount_refunded=zero,
            amount_due=format_minor(amount, currency)))
    await _check_parties(data.payer_id, data.receiver_id)
    invoice_id, now = uuid.uuid4(), utcnow()
    await db.aexecute_sql(
        "INSERT INTO invoice (id, payer_id, receiver_id, amount, currency, description, "
        "due_date, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (invoice_id, data.payer_id, data.receiver_id, amount, currency, data.description,
         data.due_date, now, now))
    return await load_invoice(invoice_id)


async def list_invoices(
    *,
    limit: int,
    cursor: str | None,
    status: InvoiceStatus | None = None,
    payer_id: uuid.UUID | None = None,
    receiver_id: uuid.UUID | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> Page[InvoiceOut]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("i.status", status), ("i.payer_id", payer_id),
                          ("i.receiver_id", receiver_id)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if created_after is not None:
        where.append("i.created_at > %s")
        params.append(created_after)
    if created_before is not None:
        where.append("i.created_at < %s")
        params.append(created_before)
    if cursor:
        where.append("(i.created_at, i.id) < (%s, %s)")
        params.extend(decode_cursor(cursor))
    sql = SELECT_INVOICE + (" WHERE " + " AND ".join(where) if where else "") + \
        " ORDER BY i.created_at DESC, i.id DESC LIMIT %s"
    rows = (await db.aexecute_sql(sql, (*params, limit + 1))).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[InvoiceOut](
        data=[invoice_out(r) for r in rows],
        next_cursor=encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None)


async def update_invoice(*, invoice_id: uuid.UUID, data: InvoiceUpdate) -> InvoiceOut:
    changes = data.model_dump(exclude_unset=True,
                              exclude=set(InvoiceUpdate.model_fields) - _EDITABLE)
    return await with_retries(lambda: _update_locked(invoice_id, data, changes))


async def _update_locked(invoice_id: uuid.UUID, data: InvoiceUpdate,
                         changes: dict[str, Any]) -> InvoiceOut:
    locked = (await db.aexecute_sql(
        "SELECT id FROM invoice WHERE id = %s FOR UPDATE", (invoice_id,))).fetchone()
    if locked is None:
        raise InvoiceNotFound(f"no invoice with id {invoice_id}")
    current = await load_invoice(invoice_id)
    check_read_only(data.read_only_values(), current)
    values = _changed_columns(current, changes)
    if values:
        await _check_new_parties(current, values)
        values["updated_at"] = utcnow()
        assignments = ", ".join(f"{column} = %s" for column in values)
        await db.aexecute_sql(f"UPDATE invoice SET {assignments} WHERE id = %s",
                              (*values.values(), invoice_id))
        current = await load_invoice(invoice_id)
    return current


_EDITABLE = {"payer_id", "receiver_id", "amount", "currency", "description", "due_date"}


def _changed_columns(current: InvoiceOut, changes: dict[str, Any]) -> dict[str, Any]:
    """Columns to write, after the rules of API.md ("Invoices") have been checked."""
    for field in ("description", "payer_id", "receiver_id", "currency", "amount"):
        if field in changes and changes[field] is None:
            raise Unprocessable(f"{field} cannot be null", loc=["body", field])
    old_currency = current.currency
    currency = changes.get("currency", old_currency)
    recovered = _minor_of(current.amount_recovered, old_currency)
    values: dict[str, Any] = {}
    if "description" in changes and changes["description"] != current.description:
        values["description"] = changes["description"]
    if "due_date" in changes and changes["due_date"] != current.due_date:
        values["due_date"] = changes["due_date"]
    money_moved = recovered > 0
    for field in ("payer_id", "receiver_id"):
        if field in changes and changes[field] != getattr(current, field):
            if money_moved:
                raise MoneyHasMoved(f"{field} cannot change once money has moved")
            values[field] = changes[field]
    if currency != old_currency:
        if money_moved:
            raise MoneyHasMoved("currency cannot change once money has moved")
        values["currency"] = currency
    if "amount" in changes or "currency" in values:
        amount = changes.get("amount") or Decimal(current.amount)
        new_amount = amount_minor(amount, currency)
        if new_amount < recovered:
            raise AmountBelowPaid(
                f"amount {format_minor(new_amount, currency)} is below the "
                f"{current.amount_recovered} already paid")
        if new_amount != _minor_of(current.amount, old_currency) or "currency" in values:
            values["amount"] = new_amount
    return values


def _minor_of(text: str, currency: str) -> int:
    return int(Decimal(text).scaleb(exponent(currency)))


async def _check_new_parties(current: InvoiceOut, values: dict[str, Any]) -> None:
    if "payer_id" in values or "receiver_id" in values:
        await _check_parties(values.get("payer_id", current.payer_id),
                             values.get("receiver_id", current.receiver_id))


async def delete_invoice(*, invoice_id: uuid.UUID) -> None:
    await with_retries(lambda: _delete_locked(invoice_id))


async def _delete_locked(invoice_id: uuid.UUID) -> None:
    locked = (await db.aexecute_sql(
        "SELECT 1 FROM invoice WHERE id = %s FOR UPDATE", (invoice_id,))).fetchone()
    if locked is None:
        raise InvoiceNotFound(f"no invoice with id {invoice_id}")
    # A separate statement, so a new snapshot: it sees every ledger row committed before the
    # lock was granted, and no new one can be added while it is held (each writer updates
    # the invoice row first, and the foreign key check takes a lock on it). A subquery in
    # the locking statement itself would still see the old snapshot, and the delete would
    # then fail on the foreign key.
    deleted = (await db.aexecute_sql(
        "DELETE FROM invoice WHERE id = %s AND NOT EXISTS "
        "(SELECT 1 FROM invoice_transaction WHERE invoice_id = %s) RETURNING id",
        (invoice_id, invoice_id))).fetchone()
    if deleted is None:
        raise InvoiceHasTransactions(
            "this invoice has transactions and is part of the ledger; it cannot be deleted")
