from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from app.http.fields import Amount, CurrencyCode, StrictBody, Timestamp

CreditSource = Literal["grant", "overpayment", "applied", "refund"]


class CreditBalance(BaseModel):
    currency: str
    amount: str


class CreditBalances(BaseModel):
    balances: list[CreditBalance]


class CreditEntryOut(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    currency: str
    # Signed: what was granted, overpaid or returned by a refund is positive; what was
    # applied to an invoice is negative.
    amount: str
    source: CreditSource
    invoice_id: uuid.UUID | None
    transaction_id: uuid.UUID | None
    reason: str | None
    created_at: Timestamp


class CreditGrant(StrictBody):
    amount: Amount
    currency: CurrencyCode
    reason: str = Field(min_length=1, max_length=500, examples=["goodwill for a late delivery"])


class CreditApply(StrictBody):
    # Left out: as much as both the payer's balance and the amount due allow.
    amount: Amount | None = None
