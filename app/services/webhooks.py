"""Signed webhooks from the payment provider, each event applied at most once.

The signature is checked on the raw body bytes before anything else. An event id is
claimed with INSERT ... ON CONFLICT DO NOTHING inside the transaction that applies it:
simultaneous copies wait on the unique index until the first commits, then replay its
stored response. The money moves through the same ledger code as POST
/invoice-transactions (app/services/payments.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from app import metrics
from app.config import get_settings
from app.db import db, with_retries
from app.errors import AppError, Conflict, InvalidSignature, problem_body
from app.models import utcnow
from app.schemas import (
    PaymentFailedEvent,
    PaymentSucceededEvent,
    RefundEvent,
    TransactionOut,
    WebhookBody,
    WebhookResult,
)
from app.services import payments
from app.services.idempotency import Outcome
from app.services.invoices import load_invoice


class EventIdReused(Conflict):
    code = "event_id_reused"


# ASCII only: str.isdigit() and int() also take other scripts' digits, and comparing
# non-ASCII strings in constant time is not possible (hmac.compare_digest refuses them).
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")
_HEX = re.compile(r"[0-9a-fA-F]{1,128}")


def signature_header(body: bytes, secret: str, *, timestamp: int) -> str:
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def _mac(secret: str, timestamp: int | str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, *, now: float | None = None) -> None:
    """Accept when any v1 matches any configured secret and t is within the tolerance."""
    s = get_settings()
    if not header:
        raise InvalidSignature("missing X-Signature header (t=<unix seconds>,v1=<hex hmac>)")
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        value = value.strip()
        if key == "t":
            timestamp = value
        elif key == "v1" and _HEX.fullmatch(value):
            candidates.append(value.lower())
    if timestamp is None or not _UNIX_SECONDS.fullmatch(timestamp) or not candidates:
        raise InvalidSignature("malformed X-Signature header; expected t=<unix seconds>,v1=<hex>")
    skew = abs((time.time() if now is None else now) - int(timestamp))
    if skew > s.webhook_tolerance_seconds:
        raise InvalidSignature(
            f"signature timestamp is {int(skew)} s away from now; the tolerance is "
            f"{s.webhook_tolerance_seconds} s")
    matched = False
    for secret in s.resolved_webhook_secrets():
        expected = _mac(secret, timestamp, body)
        for candidate in candidates:
            # No early exit: the time taken does not depend on which entry matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise InvalidSignature("signature does not match the body")


def fingerprint(event_type: str, payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(f"{event_type}\n{canonical}".encode()).hexdigest()


async def _process(
    *, event_type: str, event: WebhookBody, payload: Any,
    effect: Callable[[], Awaitable[TransactionOut]],
) -> Outcome:
    print_ = fingerprint(event_type, payload)
    try:
        outcome = await with_retries(lambda: _apply_once(event, event_type, print_, effect))
    except EventIdReused:
        metrics.record_webhook(event_type, "id_reused")
        raise
    result = "duplicate" if outcome.replayed else (
        "processed" if outcome.status == 200 else "refused")
    metrics.record_webhook(event_type, result)
    return outcome


async def _apply_once(
    event: WebhookBody, event_type: str, print_: str,
    effect: Callable[[], Awaitable[TransactionOut]],
) -> Outcome:
    """One transaction: claim the event id, apply the effect, store the response."""
    claimed = (await db.aexecute_sql(
        "INSERT INTO webhook_event (id, event_type, fingerprint, created_at) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO NOTHING RETURNING 1",
        (event.id, event_type, print_, utcnow()))).fetchone()
    if claimed is None:
        return await _replay(event.id, print_)
    try:
        # No savepoint around the effect: every effect refuses before it writes (the
        # ledger statement checks and writes in one go), so a refusal leaves nothing to
        # undo, and the event's stored refusal commits with the claim.
        transaction = await effect()
        invoice = await load_invoice(event.invoice_id)
        status = 200
        body: dict[str, Any] = WebhookResult(
            event_id=event.id, duplicate=False, invoice=invoice, transaction=transaction,
        ).model_dump(mode="json")
    except AppError as exc:
        if exc.status >= 500:
            raise
        status, body = exc.status, problem_body(exc.status, exc.code, exc.detail, exc.errors)
    await db.aexecute_sql(
        "UPDATE webhook_event SET response_status = %s, response_body = %s WHERE id = %s",
        (status, json.dumps(body), event.id))
    return Outcome(status=status, body=body)


async def _replay(event_id: str, print_: str) -> Outcome:
    row = (await db.aexecute_sql(
        "SELECT fingerprint, response_status, response_body FROM webhook_event WHERE id = %s",
        (event_id,))).fetchone()
    if row is None or row["response_status"] is None:  # pragma: no cover - see module doc
        raise EventIdReused(f"event {event_id} is being processed; retry shortly")
    if not hmac.compare_digest(row["fingerprint"], print_):
        raise EventIdReused(
            f"event id {event_id} was already delivered with a different body")
    body = json.loads(row["response_body"])
    if row["response_status"] == 200:
        body["duplicate"] = True
    return Outcome(status=row["response_status"], body=body, replayed=True)


async def payment_succeeded(*, event: PaymentSucceededEvent, payload: Any) -> Outcome:
    movement = payments.Movement(
        invoice_id=event.invoice_id, amount=event.amount_paid, kind="payment",
        payment_mode=event.payment_mode, reference=event.reference, source="webhook",
        event_id=event.id)
    return await _process(event_type="payment.succeeded", event=event, payload=payload,
                          effect=lambda: payments.move_money(movement=movement))


async def payment_failed(*, event: PaymentFailedEvent, payload: Any) -> Outcome:
    return await _process(
        event_type="payment.failed", event=event, payload=payload,
        effect=lambda: payments.record_failed_attempt(
            invoice_id=event.invoice_id, amount=event.amount, payment_mode=event.payment_mode,
            reference=event.reference, event_id=event.id))


async def refunded(*, event: RefundEvent, payload: Any) -> Outcome:
    movement = payments.Movement(
        invoice_id=event.invoice_id, amount=event.refunded_amount, kind="refund",
        payment_mode="provider", reference=event.reference, source="webhook",
        event_id=event.id)
    return await _process(event_type="refund", event=event, payload=payload,
                          effect=lambda: payments.move_money(movement=movement))
