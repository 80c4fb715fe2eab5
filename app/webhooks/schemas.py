from __future__ import annotations

import uuid
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from app.http.fields import Amount, Body, ShortText
from app.invoices.schemas import InvoiceOut
from app.ledger.schemas import TransactionOut


class WebhookBody(Body):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    id: str = Field(min_length=1, max_length=255, examples=["evt_1N2b3C"])
    invoice_id: uuid.UUID
    reference: ShortText | None = None


class PaymentSucceededEvent(WebhookBody):
    amount_paid: Amount
    payment_mode: str = Field(default="provider", min_length=1, max_length=50)


class PaymentFailedEvent(WebhookBody):
    reason: str | None = Field(default=None, max_length=1000)
    amount: Amount | None = None
    payment_mode: str = Field(default="provider", min_length=1, max_length=50)


class RefundEvent(WebhookBody):
    refunded_amount: Amount


class WebhookResult(BaseModel):
    event_id: str
    duplicate: bool
    invoice: InvoiceOut
    # None only when nothing was due and the whole amount paid went to credit.
    transaction: TransactionOut | None
    # A payment above the amount due: the excess, credited to the payer. Left out of the
    # answer when nothing was credited, so the usual answer keeps its shape.
    credited: str | None = None

    @model_serializer(mode="wrap")
    def _without_empty_credit(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if data.get("credited") is None:
            data.pop("credited", None)
        return data
