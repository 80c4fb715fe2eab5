"""Invoices: creation, reads, keyset-paginated lists, guarded changes and deletion."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from app import clock
from app.db.models import utcnow
from app.errors import Conflict, Invalid, NotFound
from app.events import outbox as events
from app.invoices import queries
from app.invoices.schemas import InvoiceCreate, InvoiceOut, InvoiceStatus, InvoiceUpdate, Party
from app.money import CURRENCY_EXPONENTS, exponent, format_minor, format_units, minor_units
from app.pagination import decode_cursor, page_json


class InvoiceNotFound(NotFound, code="invoice_not_found"): ...
class InvalidParty(Invalid, code="invalid_party"): ...
class ReadOnlyField(Invalid, code="read_only_field"): ...
class AmountBelowPaid(Conflict, code="amount_below_paid"): ...
class MoneyHasMoved(Conflict, code="money_has_moved"): ...
class InvoiceHasTransactions(Conflict, code="invoice_has_transactions"): ...
class InvoiceVoid(Conflict, code="invoice_void"): ...
class InvoicePaid(Conflict, code="invoice_paid"): ...


def invoice_json(row: Any, today: date | None = None) -> dict[str, Any]:
    """An invoice row (with its parties' names) as the API shows it: InvoiceOut's fields in
    its order, as plain values that app.http.responses encodes to exactly the bytes the
    model would (tests/unit/test_encoding.py); a read builds no model at all. Ids are
    made strings here: orjson takes the driver's own UUID type only through a callback,
    one per id (a list page had 250)."""
    currency, status, due = row["currency"], row["status"], row["due_date"]
    exp = CURRENCY_EXPONENTS[currency]
    amount, recovered = row["amount"], row["amount_recovered"]
    payer_id, receiver_id = str(row["payer_id"]), str(row["receiver_id"])
    return {
        "id": str(row["id"]),
        "payer_id": payer_id,
        "receiver_id": receiver_id,
        "payer": {"id": payer_id, "username": row["payer_username"],
                  "email": row["payer_email"]},
        "receiver": {"id": receiver_id, "username": row["receiver_username"],
                     "email": row["receiver_email"]},
        "amount": format_units(amount, exp),
        "currency": currency,
        "description": row["description"],
        "due_date": due,
        "status": status,
        "amount_recovered": format_units(recovered, exp),
        "amount_refunded": format_units(row["amount_refunded"], exp),
        "amount_due": format_units(amount - recovered, exp),
        # Overdue (docs/API.md): due before today (UTC), something still due, not void.
        "overdue": due is not None and due < (today or clock.today()) and
        status != "void" and amount > recovered,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def invoice_out(row: Any) -> InvoiceOut:
    """invoice_json() as the model, for the code that works with one, with the row's own
    ids. The row comes from our own schema, so the model is built without validating it
    again."""
    fields = invoice_json(row)
    return InvoiceOut.model_construct(**{
        **fields, "id": row["id"], "payer_id": row["payer_id"],
        "receiver_id": row["receiver_id"],
        "payer": Party.model_construct(**{**fields["payer"], "id": row["payer_id"]}),
        "receiver": Party.model_construct(**{**fields["receiver"],
                                             "id": row["receiver_id"]})})


async def get_invoice(*, invoice_id: uuid.UUID) -> InvoiceOut:
    row = await queries.one(invoice_id)
    if row is None:
        raise InvoiceNotFound(f"no invoice with id {invoice_id}")
    return invoice_out(row)


async def invoice_as_json(*, invoice_id: uuid.UUID) -> dict[str, Any]:
    """get_invoice() as plain values (invoice_json), for a read."""
    row = await queries.one(invoice_id)
    if row is None:
        raise InvoiceNotFound(f"no invoice with id {invoice_id}")
    return invoice_json(row)


def _same_amount(sent: Any, current: str) -> bool:
    try:
        return Decimal(str(sent)) == Decimal(current)
    except (InvalidOperation, ValueError):
        return False


def _check_read_only(sent: dict[str, Any], current: InvoiceOut) -> None:
    """Read-only fields may be echoed back unchanged; any other value is refused."""
    for field, value in sent.items():
        now = getattr(current, field)
        same = value == now if field == "status" else _same_amount(value, now)
        if not same:
            raise ReadOnlyField(
                f"{field} is computed from the invoice's transactions and cannot be set "
                f"(it is {now!s})", field=field)


async def _check_parties(payer_id: uuid.UUID, receiver_id: uuid.UUID) -> None:
    if payer_id == receiver_id:
        raise InvalidParty("payer and receiver must be different users", field="receiver_id")
    active = await queries.active_by_id([payer_id, receiver_id])
    for field, user_id in (("payer_id", payer_id), ("receiver_id", receiver_id)):
        if user_id not in active:
            raise InvalidParty(f"{field}: no user with id {user_id}", field=field)
        if not active[user_id]:
            raise InvalidParty(f"{field}: user {user_id} is deactivated", field=field)


async def create_invoice(*, data: InvoiceCreate, default_currency: str) -> InvoiceOut:
    currency = data.currency or default_currency
    amount = minor_units(data.amount, currency)
    read_only = data.read_only_values()
    if read_only:
        zero = format_minor(0, currency)
        _check_read_only(read_only, InvoiceOut.model_construct(
            status="pending", amount_recovered=zero, amount_refunded=zero,
            amount_due=format_minor(amount, currency)))
    await _check_parties(data.payer_id, data.receiver_id)
    invoice_id, now = uuid.uuid4(), utcnow()
    await queries.insert({
        "id": invoice_id, "payer": data.payer_id, "receiver": data.receiver_id,
        "amount": amount, "currency": currency, "description": data.description,
        "due_date": data.due_date, "created_at": now, "updated_at": now})
    invoice = await get_invoice(invoice_id=invoice_id)
    await events.record_invoice_event(type="invoice.created", invoice=invoice)
    return invoice


async def list_invoices(
    *, limit: int, cursor: str | None, status: InvoiceStatus | None = None,
    payer_id: uuid.UUID | None = None, receiver_id: uuid.UUID | None = None,
    created_after: datetime | None = None, created_before: datetime | None = None,
    overdue: bool | None = None,
) -> dict[str, Any]:
    conditions = {"i.status =": status, "i.payer_id =": payer_id,
                  "i.receiver_id =": receiver_id, "i.created_at >": created_after,
                  "i.created_at <": created_before}
    if overdue is not None:
        conditions[queries.OVERDUE if overdue else queries.NOT_OVERDUE] = clock.today()
    rows = await queries.page(limit, decode_cursor(cursor) if cursor else None,
                              {k: v for k, v in conditions.items() if v is not None})
    return page_json(rows, limit, partial(invoice_json, today=clock.today()))


_EDITABLE = {"payer_id", "receiver_id", "amount", "currency", "description", "due_date"}


async def update_invoice(*, invoice_id: uuid.UUID, data: InvoiceUpdate) -> InvoiceOut:
    """In the caller's transaction: the row is locked, then read, checked and written."""
    changes = data.model_dump(exclude_unset=True,
                              exclude=set(InvoiceUpdate.model_fields) - _EDITABLE)
    if not await queries.lock(invoice_id):
        raise InvoiceNotFound(f"no invoice with id {invoice_id}")
    current = await get_invoice(invoice_id=invoice_id)
    if current.status == "void":
        raise InvoiceVoid("a void invoice cannot be changed")
    _check_read_only(data.read_only_values(), current)
    values = _changed_columns(current, changes)
    if values:
        if "payer" in values or "receiver" in values:
            await _check_parties(values.get("payer", current.payer_id),
                                 values.get("receiver", current.receiver_id))
        values["updated_at"] = utcnow()
        await queries.update(invoice_id, values)
        before, current = current, await get_invoice(invoice_id=invoice_id)
        await _record_update(before, current)
    return current


async def _record_update(before: InvoiceOut, after: InvoiceOut) -> None:
    """invoice.updated with the changed fields' earlier values; invoice.completed too when
    the change completed it (an amount lowered to what was paid)."""
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    previous = {k: v for k, v in old.items() if new[k] != v and k != "updated_at"}
    await events.record_invoice_event(type="invoice.updated", invoice=after,
                                      previous=previous)
    if after.status == "completed" and before.status != "completed":
        await events.record_invoice_event(type="invoice.completed", invoice=after)


def _changed_columns(current: InvoiceOut, changes: dict[str, Any]) -> dict[str, Any]:
    """Columns to write, after the rules of docs/API.md ("Invoices") have been checked."""
    for field in ("description", "payer_id", "receiver_id", "currency", "amount"):
        if field in changes and changes[field] is None:
            raise Invalid(f"{field} cannot be null", field=field)
    old_currency = current.currency
    currency = changes.get("currency", old_currency)
    recovered = _minor_of(current.amount_recovered, old_currency)
    values: dict[str, Any] = {}
    if "description" in changes and changes["description"] != current.description:
        values["description"] = changes["description"]
    if "due_date" in changes and changes["due_date"] != current.due_date:
        values["due_date"] = changes["due_date"]
    money_moved = recovered > 0
    for field, column in (("payer_id", "payer"), ("receiver_id", "receiver")):
        if field in changes and changes[field] != getattr(current, field):
            if money_moved:
                raise MoneyHasMoved(f"{field} cannot change once money has moved")
            values[column] = changes[field]
    if currency != old_currency:
        if money_moved:
            raise MoneyHasMoved("currency cannot change once money has moved")
        values["currency"] = currency
    if "amount" in changes or "currency" in values:
        new_amount = minor_units(changes.get("amount") or Decimal(current.amount), currency)
        if new_amount < recovered:
            raise AmountBelowPaid(
                f"amount {format_minor(new_amount, currency)} is below the "
                f"{current.amount_recovered} already paid")
        if new_amount != _minor_of(current.amount, old_currency) or "currency" in values:
            values["amount"] = new_amount
            # Something may be due again: the overdue announcer looks at it afresh.
            values["overdue_checked_for"] = None
    return values


def _minor_of(text: str, currency: str) -> int:
    return int(Decimal(text).scaleb(exponent(currency)))


async def delete_invoice(*, invoice_id: uuid.UUID) -> None:
    """In the caller's transaction: lock the row, then delete it only if the ledger has no
    row for it. The check is a separate statement, so a new snapshot: it sees every ledger
    row committed before the lock was granted, and no new one can be added while it is
    held (each writer updates the invoice row first, and the foreign key check takes a
    lock on it). A subquery in the locking statement itself would still see the old
    snapshot, and the delete would then fail on the foreign key."""
    if not await queries.lock(invoice_id):
        raise InvoiceNotFound(f"no invoice with id {invoice_id}")
    invoice = await get_invoice(invoice_id=invoice_id)
    if not await queries.delete_if_no_transactions(invoice_id):
        raise InvoiceHasTransactions(
            "this invoice has transactions (or credit came from it) and is part of the "
            "ledger; it cannot be deleted")
    await events.record_invoice_event(type="invoice.deleted", invoice=invoice)


# -- the lifecycle: void, uncollectible -------------------------------------------------------

async def void_invoice(*, invoice_id: uuid.UUID) -> InvoiceOut:
    """In the caller's transaction. Final, and only while nothing has been paid: the row is
    locked first, so a payment racing the void either came before (money has moved) or
    finds it void (the ledger statement's own WHERE refuses a void invoice)."""
    current = await _locked(invoice_id)
    if current.status == "void":
        raise InvoiceVoid("the invoice is already void")
    if current.amount_recovered != format_minor(0, current.currency):
        raise MoneyHasMoved(f"{current.amount_recovered} {current.currency} has been paid "
                            "on this invoice; refund it instead of voiding it")
    return await _mark(current, "voided_at", "invoice.voided")


async def mark_uncollectible(*, invoice_id: uuid.UUID) -> InvoiceOut:
    """Until it is paid in full (it stays payable); marking it again changes nothing."""
    current = await _locked(invoice_id)
    if current.status == "void":
        raise InvoiceVoid("a void invoice cannot be marked uncollectible")
    if current.amount_due == format_minor(0, current.currency):
        raise InvoicePaid("the invoice is paid in full: nothing is left to collect")
    if await queries.is_marked_uncollectible(invoice_id):
        return current
    # Its event also when a refund's status still shows first (partially_refunded).
    return await _mark(current, "uncollectible_at", "invoice.uncollectible")


async def mark_collectible(*, invoice_id: uuid.UUID) -> InvoiceOut:
    """Undo `mark_uncollectible`; on an invoice not so marked it changes nothing."""
    current = await _locked(invoice_id)
    if current.status == "void":
        raise InvoiceVoid("a void invoice cannot be marked collectible")
    if not await queries.is_marked_uncollectible(invoice_id):
        return current
    await queries.update(invoice_id, {"uncollectible_at": None, "updated_at": utcnow()})
    after = await get_invoice(invoice_id=invoice_id)
    await _record_update(current, after)
    return after


async def _mark(current: InvoiceOut, column: str, event_type: str) -> InvoiceOut:
    """Set a lifecycle mark (a time) on the locked invoice, and write its event."""
    now = utcnow()
    await queries.update(current.id, {column: now, "updated_at": now})
    after = await get_invoice(invoice_id=current.id)
    await events.record_invoice_event(type=event_type, invoice=after,
                                      previous={"status": current.status})
    return after


async def _locked(invoice_id: uuid.UUID) -> InvoiceOut:
    if not await queries.lock(invoice_id):
        raise InvoiceNotFound(f"no invoice with id {invoice_id}")
    return await get_invoice(invoice_id=invoice_id)
