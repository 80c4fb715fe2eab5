"""Provider events: what each one does to the ledger (the same rules as POST
/invoice-transactions). That each event id takes effect at most once is the router's
replay (app/webhooks/router.py, app/http/replay.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.credit import service as credit
from app.errors import Conflict
from app.invoices.service import get_invoice
from app.ledger import service as ledger
from app.ledger.schemas import TransactionOut
from app.webhooks.schemas import (
    PaymentFailedEvent,
    PaymentSucceededEvent,
    RefundEvent,
    WebhookBody,
    WebhookResult,
)


class EventIdReused(Conflict, code="event_id_reused"): ...


@dataclass(frozen=True)
class EventType:
    name: str
    body: type[WebhookBody]
    effect: Callable[[Any], Awaitable[tuple[TransactionOut | None, str | None]]]


async def _paid(event: PaymentSucceededEvent) -> tuple[TransactionOut | None, str | None]:
    """More than is due is paid as far as it is due and the rest credited to the payer;
    on a void invoice, all of it is credited: the provider has taken the money, so refusing
    it would leave the books disagreeing with the bank."""
    return await credit.pay_crediting_the_excess(provider=True, new=ledger.NewTransaction(
        invoice_id=event.invoice_id, amount=event.amount_paid, kind="payment",
        payment_mode=event.payment_mode, reference=event.reference, source="webhook",
        event_id=event.id))


async def _failed(event: PaymentFailedEvent) -> tuple[TransactionOut | None, str | None]:
    return await ledger.record_failed_attempt(
        invoice_id=event.invoice_id, amount=event.amount, payment_mode=event.payment_mode,
        reference=event.reference, event_id=event.id), None


async def _refunded(event: RefundEvent) -> tuple[TransactionOut | None, str | None]:
    return await ledger.record_transaction(new=ledger.NewTransaction(
        invoice_id=event.invoice_id, amount=event.refunded_amount, kind="refund",
        payment_mode="provider", reference=event.reference, source="webhook",
        event_id=event.id)), None


PAYMENT_SUCCEEDED = EventType("payment.succeeded", PaymentSucceededEvent, _paid)
PAYMENT_FAILED = EventType("payment.failed", PaymentFailedEvent, _failed)
REFUND = EventType("refund", RefundEvent, _refunded)


async def apply(*, kind: EventType, event: WebhookBody) -> WebhookResult:
    transaction, credited = await kind.effect(event)
    return WebhookResult(event_id=event.id, duplicate=False, transaction=transaction,
                         credited=credited,
                         invoice=await get_invoice(invoice_id=event.invoice_id))
