from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from app.http.fields import Amount, InTimestamp, ShortText, StrictBody, Timestamp

Kind = Literal["payment", "refund"]
Source = Literal["api", "webhook"]


class TransactionCreate(StrictBody):
    invoice_id: uuid.UUID
    amount: Amount
    payment_mode: str = Field(min_length=1, max_length=50, examples=["upi"])
    payment_date: InTimestamp | None = None
    reference: ShortText | None = None
    kind: Kind = "payment"


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
