"""Provider events, each applied at most once: the event id is claimed, the money moves
through the ledger (as for POST /invoice-transactions), and the answer is stored, all in
the caller's one transaction (app/http/replay.py). Copies that arrive at the same moment
wait for the first and replay its answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.errors import Conflict
from app.http import replay
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


class EventIdReused(Conflict):
    code = "event_id_reused"


@dataclass(frozen=True)
class EventType:
    name: str
    body: type[WebhookBody]
    effect: Callable[[Any], Awaitable[TransactionOut]]


def _paid(event: PaymentSucceededEvent) -> Awaitable[TransactionOut]:
    return ledger.record_transaction(new=ledger.NewTransaction(
        invoice_id=event.invoice_id, amount=event.amount_paid, kind="payment",
        payment_mode=event.payment_mode, reference=event.reference, source="webhook",
        event_id=event.id))


def _failed(event: PaymentFailedEvent) -> Awaitable[TransactionOut]:
    return ledger.record_failed_attempt(
        invoice_id=event.invoice_id, amount=event.amount, payment_mode=event.payment_mode,
        reference=event.reference, event_id=event.id)


def _refunded(event: RefundEvent) -> Awaitable[TransactionOut]:
    return ledger.record_transaction(new=ledger.NewTransaction(
        invoice_id=event.invoice_id, amount=event.refunded_amount, kind="refund",
        payment_mode="provider", reference=event.reference, source="webhook",
        event_id=event.id))


PAYMENT_SUCCEEDED = EventType("payment.succeeded", PaymentSucceededEvent, _paid)
PAYMENT_FAILED = EventType("payment.failed", PaymentFailedEvent, _failed)
REFUND = EventType("refund", RefundEvent, _refunded)


async def apply(*, kind: EventType, event: WebhookBody, payload: Any,
                secret: str) -> replay.Outcome:
    """In the caller's transaction: apply the event once, or replay its first answer."""
    claim = replay.Claim(
        scope="webhook", key=event.id, fingerprint=replay.fingerprint(secret, kind.name, payload),
        wait=True, ttl=None,
        reused=lambda: EventIdReused(
            f"event id {event.id} was already delivered with a different body"),
        busy=lambda: EventIdReused(f"event {event.id} is being processed; retry shortly"))

    async def run() -> WebhookResult:
        transaction = await kind.effect(event)
        return WebhookResult(event_id=event.id, duplicate=False, transaction=transaction,
                             invoice=await get_invoice(invoice_id=event.invoice_id))

    outcome = await replay.once(claim, status=200, run=run)
    if outcome.replayed and outcome.status == 200:
        return replay.Outcome(outcome.status, {**outcome.body, "duplicate": True}, True)
    return outcome
