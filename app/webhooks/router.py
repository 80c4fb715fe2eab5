"""POST /webhooks/payment/success, /webhooks/payment/failure and /webhooks/refund: one
handler, made once per event type.

The signature is checked on the raw bytes first. Then, in one transaction, the event id is
claimed, the event applied and its answer stored (app/http/replay.py): each event id takes
effect at most once, and copies that arrive at the same moment wait for the first and
replay its answer (`"duplicate": true`). A payment as it is (no excess to credit, nothing
to refuse) is tried first in one statement that does all of that (replay.at_once()); what
it leaves, the transaction does."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Header, Request, Response

from app.config import Settings
from app.db.transaction import autocommit, transaction
from app.http import replay
from app.http.deps import AppSettings
from app.http.jsonbody import json_invalid, loads_exact, validate_as
from app.http.problems import problems
from app.http.responses import json_response
from app.http.routing import make_router
from app.ops import metrics
from app.webhooks import service, signature
from app.webhooks.schemas import WebhookResult

router = make_router(prefix="/webhooks", tags=["webhooks"])

# Documented as the ProviderSignature security scheme (app/main.py), so /docs has a field
# for it under Authorize; read here without validation, so a missing one is 401, not 422.
Signature = Annotated[str | None, Header(alias="X-Signature", include_in_schema=False)]

_ERRORS = problems({401: ["invalid_signature"], 404: ["invoice_not_found"],
                    409: ["event_id_reused", "amount_exceeds_due", "amount_exceeds_refundable",
                          "invoice_void", "invoice_changed", "credit_balance_too_large"],
                    422: ["validation_error"]}, body=True)


async def _verified(request: Request, header: str | None, kind: service.EventType,
                    settings: Settings) -> tuple[Any, Any]:
    raw = await request.body()
    try:  # before the body is even parsed
        signature.verify(raw, header, secrets=settings.resolved_webhook_secrets(),
                         tolerance_seconds=settings.webhook_tolerance_seconds)
    except signature.InvalidSignature:
        metrics.record_webhook(kind.name, "invalid_signature")
        raise
    try:
        payload = loads_exact(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise json_invalid(str(exc)) from None
    return validate_as(kind.body, payload), payload


async def _at_once(kind: service.EventType, event: Any,
                   claim: replay.Claim) -> replay.Outcome | None:
    """The event in one statement, where it has one (a payment as it is); None: it is
    left to the transaction below (tests/test_webhooks.py)."""
    if kind.at_once is None or kind.at_once_values is None:
        return None
    values = kind.at_once_values(event)
    if values is None:
        return None
    statement = kind.at_once
    outcome = await autocommit(lambda: replay.at_once(claim, statement, values))
    if outcome is not None and not outcome.replayed:
        service.count_payment(outcome.body)
    return outcome


async def _in_a_transaction(kind: service.EventType, event: Any,
                            claim: replay.Claim) -> replay.Outcome:
    if kind.read is not None:  # its first read rides with the claim
        read = kind.read
        return await transaction(lambda: replay.once_reading(
            claim, read, {"invoice_id": event.invoice_id}, status=200,
            run=lambda row: service.apply(kind=kind, event=event, read=row)))
    return await transaction(lambda: replay.once(
        claim, status=200, run=lambda: service.apply(kind=kind, event=event)))


def _handler(kind: service.EventType) -> Callable[..., Awaitable[Response]]:
    async def handle(request: Request, settings: AppSettings,
                     x_signature: Signature = None) -> Response:
        event, payload = await _verified(request, x_signature, kind, settings)
        claim = replay.Claim(
            scope="webhook", key=event.id, wait=True, ttl=None,
            fingerprint=replay.fingerprint(settings.resolved_secret_key(), kind.name, payload),
            reused=lambda: service.EventIdReused(
                f"event id {event.id} was already delivered with a different body"),
            busy=lambda: service.EventIdReused(
                f"event {event.id} is being processed; retry shortly"),
            render=service.stored_answer)
        try:
            outcome = await _at_once(kind, event, claim) or await _in_a_transaction(
                kind, event, claim)
        except service.EventIdReused:
            metrics.record_webhook(kind.name, "id_reused")
            raise
        metrics.record_webhook(kind.name, "duplicate" if outcome.replayed else
                               "processed" if outcome.status == 200 else "refused")
        if not outcome.replayed:
            return json_response(outcome.body, status=outcome.status)
        body = {**outcome.body, "duplicate": True} if outcome.status == 200 else outcome.body
        return json_response(body, status=outcome.status,
                             headers={"Idempotent-Replayed": "true"})

    return handle


_ONCE = ("Each event id takes effect once: a repeat with the same body gets the first "
         "answer again (`\"duplicate\": true`); the same id with another body is `409`.")

for path, name, kind, summary, what in (
    ("/payment/success", "payment_success", service.PAYMENT_SUCCEEDED,
     "Provider: a payment succeeded (signed)",
     "Records a payment of `amount_paid` on the invoice, by the same rules as an admin's."),
    ("/payment/failure", "payment_failure", service.PAYMENT_FAILED,
     "Provider: a payment attempt failed (signed)",
     "Records the failed attempt; no money moves. The invoice shows `payment_failed` until "
     "something is paid."),
    ("/refund", "refund", service.REFUND, "Provider: a refund was made (signed)",
     "Records a refund of `refunded_amount`, never more than was paid and not yet refunded."),
):
    router.add_api_route(
        path, _handler(kind), methods=["POST"], response_model=WebhookResult,
        responses=_ERRORS, summary=summary, name=name, description=f"{what} {_ONCE}",
        openapi_extra={"security": [{"ProviderSignature": []}],
                       "requestBody": {"required": True, "content": {"application/json": {
                           "schema": kind.body.model_json_schema()}}}})
