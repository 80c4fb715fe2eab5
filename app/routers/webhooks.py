from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Header, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from app import metrics
from app.errors import InvalidSignature
from app.jsonbody import loads_exact
from app.routers.common import make_router, outcome_response, problems, validate_as
from app.schemas import PaymentFailedEvent, PaymentSucceededEvent, RefundEvent, WebhookResult
from app.services import webhooks

router = make_router(prefix="/webhooks", tags=["webhooks"])

Signature = Annotated[str | None, Header(
    alias="X-Signature",
    description="t=<unix seconds>,v1=<hex HMAC-SHA256 of f'{t}.' + raw body>")]

_ERRORS = problems({401: ["invalid_signature"], 404: ["invoice_not_found"],
                    409: ["event_id_reused", "amount_exceeds_due", "amount_exceeds_refundable",
                          "invoice_changed"],
                    422: ["validation_error"]}, body=True)


def _doc(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": model.model_json_schema()}}}}


async def _verified(request: Request, signature: str | None, model: type[BaseModel],
                    event_type: str) -> tuple[Any, Any]:
    raw = await request.body()
    try:
        webhooks.verify_signature(raw, signature)  # before the body is even parsed
    except InvalidSignature:
        metrics.record_webhook(event_type, "invalid_signature")
        raise
    try:
        payload = loads_exact(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body",),
                                       "msg": "JSON decode error",
                                       "ctx": {"error": str(exc)}}]) from None
    return validate_as(model, payload), payload


@router.post("/payment/success", response_model=WebhookResult, responses=_ERRORS,
             openapi_extra=_doc(PaymentSucceededEvent),
             summary="Provider: a payment succeeded (signed)")
async def payment_success(request: Request, x_signature: Signature = None) -> Response:
    event, payload = await _verified(request, x_signature, PaymentSucceededEvent,
                                     "payment.succeeded")
    return outcome_response(await webhooks.payment_succeeded(event=event, payload=payload))


@router.post("/payment/failure", response_model=WebhookResult, responses=_ERRORS,
             openapi_extra=_doc(PaymentFailedEvent),
             summary="Provider: a payment attempt failed (signed)")
async def payment_failure(request: Request, x_signature: Signature = None) -> Response:
    event, payload = await _verified(request, x_signature, PaymentFailedEvent,
                                     "payment.failed")
    return outcome_response(await webhooks.payment_failed(event=event, payload=payload))


@router.post("/refund", response_model=WebhookResult, responses=_ERRORS,
             openapi_extra=_doc(RefundEvent), summary="Provider: a refund was made (signed)")
async def refund(request: Request, x_signature: Signature = None) -> Response:
    event, payload = await _verified(request, x_signature, RefundEvent, "refund")
    return outcome_response(await webhooks.refunded(event=event, payload=payload))
