from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from app.http.fields import Amount, InTimestamp, ShortText, StrictBody, Timestamp

Kind = Literal["payment", "refund"]
Source = Literal["api", "webhook", "credit"]


class TransactionCreate(StrictBody):
    invoice_id: uuid.UUID
    amount: Amount
    payment_mode: str = Field(min_length=1, max_length=50, examples=["upi"])
    payment_date: InTimestamp | None = None
    reference: ShortText | None = None
    kind: Kind = "payment"
    # A payment larger than what is due: refused (409 amount_exceeds_due), or the due part
    # paid and the rest credited to the payer.
    overpayment: Literal["reject", "credit"] = "reject"


class TransactionOut(BaseModel):
    id: uuid.UUID
    invoice_id: uuid.UUID
    kind: Kind
    status: Literal["succeeded", "failed"]
    amount: str
    currency: str
    payment_mode: str
    payment_date: Timestamp
    reference: str | None
    source: Source
    event_id: str | None
    created_at: Timestamp


class CreditedTransactionOut(TransactionOut):
    """A payment with `"overpayment": "credit"`: what was credited to the payer, if any."""

    credited: str | None = None
