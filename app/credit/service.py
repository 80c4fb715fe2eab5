"""Customer credit: granted by an admin, made from overpayments, spent on invoices.

A credit-funded payment is a payment like any other (app/ledger): the same statement, the
same events, refundable, and a refund of it returns to credit (the ledger statement does
that). Everything here runs in the caller's transaction, and locks the invoice before the
balance, as every writer does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.credit import queries
from app.credit.schemas import CreditBalance, CreditBalances, CreditEntryOut, CreditGrant
from app.db.models import utcnow
from app.errors import Conflict
from app.invoices.service import InvoiceNotFound, InvoiceVoid
from app.ledger import service as ledger
from app.ledger.schemas import TransactionOut
from app.money import format_minor, minor_units
from app.ops import metrics
from app.pagination import decode_cursor, page_json
from app.users.service import UserNotFound


class AmountExceedsCredit(Conflict, code="amount_exceeds_credit"): ...
class CreditBalanceTooLarge(Conflict, code="credit_balance_too_large"): ...


LARGEST_BALANCE = 10**15 - 1  # minor units, as for every amount (migrations/0007)


def credit_entry_json(row: Any) -> dict[str, Any]:
    """A credit entry row as the API shows it: CreditEntryOut's fields in its order, as
    plain values that app.http.responses encodes to the bytes the model would."""
    cur = row["currency"]
    return {"id": row["id"], "user_id": row["user_id"], "currency": cur,
            "amount": format_minor(row["amount"], cur), "source": row["source"],
            "invoice_id": row["invoice_id"], "transaction_id": row["transaction_id"],
            "reason": row["reason"], "created_at": row["created_at"]}


def credit_entry_out(row: Any) -> CreditEntryOut:
    return CreditEntryOut.model_construct(**credit_entry_json(row))


async def balances(*, user_id: uuid.UUID) -> CreditBalances:
    if not await queries.user_exists(user_id):
        raise UserNotFound(f"no user with id {user_id}")
    return CreditBalances(balances=[
        CreditBalance(currency=r["currency"], amount=format_minor(r["balance"], r["currency"]))
        for r in await queries.balances(user_id)])


async def entries(*, user_id: uuid.UUID, limit: int, cursor: str | None
                  ) -> dict[str, Any]:
    """Newest first, as plain values (app.pagination.page_json)."""
    if not await queries.user_exists(user_id):
        raise UserNotFound(f"no user with id {user_id}")
    rows = await queries.entries(user_id, limit, decode_cursor(cursor) if cursor else None)
    return page_json(rows, limit, credit_entry_json)


async def grant(*, user_id: uuid.UUID, data: CreditGrant) -> CreditEntryOut:
    """An admin's grant: the balance goes up, the entry and `credit.granted` are written."""
    if not await queries.user_exists(user_id):
        raise UserNotFound(f"no user with id {user_id}", source="path")
    amount = minor_units(data.amount, data.currency)
    row = await _add(user_id=user_id, currency=data.currency, amount=amount, source="grant",
                     reason=data.reason)
    return credit_entry_out(row)


async def _check_room(*, user_id: uuid.UUID, currency: str, amount: int) -> None:
    """Checked under the balance row's lock (kept until the transaction ends), before any
    write: past the largest amount the database's CHECK would refuse it in the middle of
    the transaction."""
    held = await queries.locked_balance(user_id, currency)
    if held + amount > LARGEST_BALANCE:
        raise CreditBalanceTooLarge(
            f"the balance would be {format_minor(held + amount, currency)} {currency}, more "
            "than the largest amount this service keeps")


async def _add(*, user_id: uuid.UUID, currency: str, amount: int, source: str,
               invoice_id: uuid.UUID | None = None, transaction_id: uuid.UUID | None = None,
               reason: str | None = None) -> Any:
    await _check_room(user_id=user_id, currency=currency, amount=amount)
    row = await queries.add({
        "id": uuid.uuid4(), "user_id": user_id, "currency": currency, "amount": amount,
        "source": source, "invoice_id": invoice_id, "transaction_id": transaction_id,
        "reason": reason, "created_at": utcnow()})
    metrics.record_credit("granted", currency, amount)
    return row


async def apply(*, invoice_id: uuid.UUID, amount: Decimal | None) -> TransactionOut:
    """Pay the invoice from its payer's credit in its currency: `amount`, or as much as both
    the balance and the amount due allow."""
    invoice = await queries.locked_invoice(invoice_id)
    if invoice is None:
        raise InvoiceNotFound(f"no invoice with id {invoice_id}")
    if invoice["voided_at"] is not None:
        raise InvoiceVoid(f"invoice {invoice_id} is void: it takes no payment")
    currency, payer = invoice["currency"], invoice["payer_id"]
    due = invoice["amount"] - invoice["amount_recovered"]
    balance = await queries.locked_balance(payer, currency)
    wanted = minor_units(amount, currency) if amount is not None else min(balance, due)
    if wanted > due or due == 0:
        raise ledger.AmountExceedsDue(
            f"payment of {format_minor(wanted, currency)} exceeds the amount due "
            f"{format_minor(due, currency)}")
    if wanted > balance or wanted == 0:
        raise AmountExceedsCredit(
            f"the payer's credit is {format_minor(balance, currency)} {currency}; "
            f"{format_minor(wanted, currency)} cannot be applied")
    paid = await ledger.record_transaction(new=ledger.NewTransaction(
        invoice_id=invoice_id, amount=Decimal(format_minor(wanted, currency)),
        kind="payment", payment_mode="credit", source="credit"))
    spent = await queries.spend({
        "id": uuid.uuid4(), "user_id": payer, "currency": currency, "spent": wanted,
        "invoice_id": invoice_id, "transaction_id": paid.id, "created_at": utcnow()})
    assert spent is not None  # the balance row is locked and was checked above
    metrics.record_credit("applied", currency, wanted)
    return paid


@dataclass(frozen=True)
class Paid:
    transaction: TransactionOut | None  # None when nothing was due
    credited: str | None  # the amount credited to the payer, if any
    invoice: Any  # the invoice's row after it (the locked row, with its new sums)


async def pay_crediting_the_excess(*, new: ledger.NewTransaction, provider: bool = False,
                                   locked: Any | None = None) -> Paid:
    """A payment larger than what is due: the due part is paid and the rest credited to
    the payer. For the `provider`, whose money has already moved, a void invoice or one
    with nothing due has all of it credited; an admin's payment is refused there, before
    anything is written. `locked`: the invoice's row, already read and locked in this
    transaction (its columns NULL if there is no such invoice)."""
    invoice = locked if locked is not None else await queries.locked_invoice(new.invoice_id)
    if invoice is None or invoice["id"] is None:
        raise InvoiceNotFound(f"no invoice with id {new.invoice_id}")
    void = invoice["voided_at"] is not None
    if void and not provider:
        raise InvoiceVoid(f"invoice {new.invoice_id} is void: it takes no payment")
    currency = invoice["currency"]
    total = minor_units(new.amount, currency)
    due = 0 if void else invoice["amount"] - invoice["amount_recovered"]
    if due == 0 and not provider:
        raise ledger.AmountExceedsDue("nothing is due on this invoice; grant credit with "
                                      "POST /users/{id}/credit instead")
    paid_minor, excess = min(total, due), max(total - due, 0)
    if excess > 0:  # refused before the payment is written, not after (nothing to undo)
        await _check_room(user_id=invoice["payer_id"], currency=currency, amount=excess)
    paid, after = None, dict(invoice)
    if paid_minor > 0:
        recorded = await ledger.record(new=ledger.NewTransaction(**{
            **vars(new), "amount": Decimal(format_minor(paid_minor, currency))}))
        paid = recorded.transaction
        after.update(recorded.invoice)
    if excess == 0:
        return Paid(paid, None, after)
    await _add(user_id=invoice["payer_id"], currency=currency, amount=excess,
               source="overpayment", invoice_id=new.invoice_id,
               transaction_id=paid.id if paid else None,
               reason=f"{format_minor(total, currency)} {currency} paid on a void invoice"
               if void else f"overpayment of {format_minor(total, currency)} {currency} on "
                            f"an invoice with {format_minor(due, currency)} due")
    return Paid(paid, format_minor(excess, currency), after)
