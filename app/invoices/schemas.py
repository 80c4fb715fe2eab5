from __future__ import annotations

import uuid
from datetime import date
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field

from app.http.fields import Amount, CurrencyCode, InTimestamp, StrictBody, Timestamp
from app.http.params import PageQuery

InvoiceStatus = Literal[
    "pending", "payment_failed", "partially_paid", "completed", "partially_refunded",
    "refunded", "uncollectible", "void"
]


class InvoiceQuery(PageQuery):
    """GET /invoices: a page, filtered."""

    status: InvoiceStatus | None = None
    payer_id: uuid.UUID | None = None
    receiver_id: uuid.UUID | None = None
    created_after: InTimestamp | None = None
    created_before: InTimestamp | None = None
    overdue: bool | None = Field(
        default=None, description="true: due before today (UTC), something still due, not void")


class ReadOnlyInvoiceFields(StrictBody):
    """Accepted only so that a client sending them gets `read_only_field`, not a typo error."""

    status: Any = Field(default=None, json_schema_extra={"readOnly": True})
    amount_recovered: Any = Field(default=None, json_schema_extra={"readOnly": True})
    amount_refunded: Any = Field(default=None, json_schema_extra={"readOnly": True})
    amount_due: Any = Field(default=None, json_schema_extra={"readOnly": True})

    def read_only_values(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ReadOnlyInvoiceFields.model_fields
                if k in self.model_fields_set}


class InvoiceCreate(ReadOnlyInvoiceFields):
    payer_id: uuid.UUID = Field(validation_alias=AliasChoices("payer_id", "payer"))
    receiver_id: uuid.UUID = Field(validation_alias=AliasChoices("receiver_id", "receiver"))
    amount: Amount
    currency: CurrencyCode | None = None
    description: str = Field(max_length=2000, examples=["Consulting, November"])
    due_date: date | None = None


class InvoiceUpdate(ReadOnlyInvoiceFields):
    payer_id: uuid.UUID | None = Field(
        default=None, validation_alias=AliasChoices("payer_id", "payer"))
    receiver_id: uuid.UUID | None = Field(
        default=None, validation_alias=AliasChoices("receiver_id", "receiver"))
    amount: Amount | None = None
    currency: CurrencyCode | None = None
    description: str | None = Field(default=None, max_length=2000)
    due_date: date | None = None


class Party(BaseModel):
    id: uuid.UUID
    username: str
    email: str


class InvoiceOut(BaseModel):
    id: uuid.UUID
    payer_id: uuid.UUID
    receiver_id: uuid.UUID
    payer: Party
    receiver: Party
    amount: str
    currency: str
    description: str
    due_date: date | None
    status: InvoiceStatus
    amount_recovered: str
    amount_refunded: str
    amount_due: str
    # due_date before today (UTC), something still due, and not void.
    overdue: bool
    created_at: Timestamp
    updated_at: Timestamp
