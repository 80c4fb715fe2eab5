"""Provider events: what each one does to the ledger (the same rules as POST
/invoice-transactions). That each event id takes effect at most once is the router's
replay (app/webhooks/router.py, app/http/replay.py)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from app import clock
from app.credit import service as credit
from app.db.models import utcnow
from app.db.sql import Statement
from app.errors import Conflict
from app.invoices.service import get_invoice, invoice_json, invoice_out
from app.ledger import service as ledger
from app.ledger.schemas import TransactionOut
from app.ledger.service import transaction_json
from app.money import MAX_EXPONENT, has_at_most_decimals, minor_units
from app.ops import metrics
from app.webhooks.queries import CLAIM_LOCKING_INVOICE, PAY_AT_ONCE
from app.webhooks.schemas import (
    PaymentFailedEvent,
    PaymentSucceededEvent,
    RefundEvent,
    WebhookBody,
    WebhookResult,
)


class EventIdReused(Conflict, code="event_id_reused"): ...


# What an effect did: the transaction (None if none), the amount credited (or None), and
# the invoice's row after it if the effect has it (else it is read for the answer).
Effect = tuple[TransactionOut | None, str | None, Any | None]


@dataclass(frozen=True)
class EventType:
    name: str
    body: type[WebhookBody]
    effect: Callable[[Any, Any], Awaitable[Effect]]  # (event, the row `read` read)
    # Read, and locked, in the statement that claims the event id (app/http/replay.py).
    read: Statement | None = None
    # The event in one statement, tried first (app/http/replay.py, at_once()), and its values.
    at_once: Statement | None = None
    at_once_values: Callable[[Any], dict[str, Any] | None] | None = None


async def _paid(event: PaymentSucceededEvent, invoice: Any) -> Effect:
    """More than is due is paid as far as it is due and the rest credited to the payer;
    on a void invoice, all of it is credited: the provider has taken the money, so refusing
    it would leave the books disagreeing with the bank."""
    done = await credit.pay_crediting_the_excess(provider=True, locked=invoice,
                                                 new=ledger.NewTransaction(
        invoice_id=event.invoice_id, amount=event.amount_paid, kind="payment",
        payment_mode=event.payment_mode, reference=event.reference, source="webhook",
        event_id=event.id))
    return done.transaction, done.credited, done.invoice


async def _failed(event: PaymentFailedEvent, _: Any) -> Effect:
    return await ledger.record_failed_attempt(
        invoice_id=event.invoice_id, amount=event.amount, payment_mode=event.payment_mode,
        reference=event.reference, event_id=event.id), None, None


async def _refunded(event: RefundEvent, _: Any) -> Effect:
    return await ledger.record_transaction(new=ledger.NewTransaction(
        invoice_id=event.invoice_id, amount=event.refunded_amount, kind="refund",
        payment_mode="provider", reference=event.reference, source="webhook",
        event_id=event.id)), None, None


def at_once_values(event: PaymentSucceededEvent) -> dict[str, Any] | None:
    """PAY_AT_ONCE's values for a payment event; None if its amount has more decimals than
    any currency (nothing to try: PostgreSQL's numeric need not hold an absurd exponent)."""
    if not has_at_most_decimals(event.amount_paid, MAX_EXPONENT):
        return None
    now = utcnow()
    return {"kind": "payment", "amount": event.amount_paid, "source": "webhook",
            "created_at": now, "invoice_id": event.invoice_id, "id": uuid.uuid4(),
            "payment_mode": event.payment_mode, "payment_date": now,
            "reference": event.reference, "event_id": event.id, "today": clock.today()}


def count_payment(answer: dict[str, Any]) -> None:
    """The metric ledger.record() counts, for a payment made by PAY_AT_ONCE."""
    paid = answer["transaction"]
    metrics.record_transaction("payment", paid["currency"], "webhook",
                               minor_units(Decimal(paid["amount"]), paid["currency"]))


def stored_answer(body: dict[str, Any]) -> dict[str, Any]:
    """A stored answer as it is sent: PAY_AT_ONCE stores the rows it is made of (`raw`,
    form `v` 1), rendered here exactly as apply() answers (tests/unit/test_encoding.py,
    which also pins one stored answer's bytes: a replay must keep answering what the
    first answer said, whatever changes later)."""
    raw = body.get("raw")
    if raw is None:
        return body
    if raw.get("v") != 1:  # a later form needs its own renderer here, kept beside this one
        raise ValueError(f"a stored answer of an unknown form: {raw.get('v')!r}")
    paid, invoice = dict(raw["transaction"]), dict(raw["invoice"])
    for row, names in ((paid, ("payment_date", "created_at")),
                       (invoice, ("created_at", "updated_at"))):
        for name in names:  # in UTC whatever the session's time zone wrote
            row[name] = datetime.fromisoformat(row[name]).astimezone(UTC)
    if invoice["due_date"] is not None:
        invoice["due_date"] = date.fromisoformat(invoice["due_date"])
    return {"event_id": paid["event_id"], "duplicate": False,
            "invoice": invoice_json(invoice, date.fromisoformat(raw["today"])),
            "transaction": transaction_json(paid)}


PAYMENT_SUCCEEDED = EventType("payment.succeeded", PaymentSucceededEvent, _paid,
                              read=CLAIM_LOCKING_INVOICE, at_once=PAY_AT_ONCE,
                              at_once_values=at_once_values)
PAYMENT_FAILED = EventType("payment.failed", PaymentFailedEvent, _failed)
REFUND = EventType("refund", RefundEvent, _refunded)


async def apply(*, kind: EventType, event: WebhookBody, read: Any = None) -> WebhookResult:
    transaction, credited, invoice = await kind.effect(event, read)
    complete = invoice is not None and invoice["payer_username"] is not None \
        and invoice["receiver_username"] is not None
    return WebhookResult(event_id=event.id, duplicate=False, transaction=transaction,
                         credited=credited,
                         invoice=invoice_out(invoice) if complete
                         else await get_invoice(invoice_id=event.invoice_id))
