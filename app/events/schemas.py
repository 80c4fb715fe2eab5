from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.http.fields import InTimestamp, StrictBody, Timestamp
from app.http.params import PageQuery

EventType = Literal["invoice.created", "invoice.updated", "invoice.deleted",
                    "invoice.completed", "invoice.voided", "invoice.uncollectible",
                    "invoice.overdue", "payment.succeeded", "payment.failed",
                    "refund.succeeded", "credit.granted", "credit.applied"]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]
Subscription = EventType | Literal["*"]


class EventQuery(PageQuery):
    """GET /events: a page, filtered."""

    type: EventType | None = None
    invoice_id: uuid.UUID | None = None
    created_after: InTimestamp | None = None
    created_before: InTimestamp | None = None


class EventOut(BaseModel):
    id: str = Field(examples=["evt_5f0c3a1e9b2d4c8e8a7b6c5d4e3f2a1b"])
    type: EventType
    created_at: Timestamp
    invoice_id: uuid.UUID | None
    data: dict[str, Any] = Field(description="`object`: the invoice or transaction as the "
                                 "API returned it at that moment")
    previous: dict[str, Any] | None = Field(
        default=None, description="on invoice.updated: the changed fields' earlier values")


class DeliveryAttemptOut(BaseModel):
    delivery_id: int
    endpoint_id: uuid.UUID
    delivery_status: Literal["pending", "delivered", "failed"]
    attempt: int | None = Field(description="null: not tried yet")
    status_code: int | None
    error: str | None
    duration_ms: float | None
    created_at: Timestamp | None
    next_attempt_at: Timestamp | None


class DeliveryAttempts(BaseModel):
    data: list[DeliveryAttemptOut]


class EndpointCreate(StrictBody):
    url: str = Field(max_length=2000, examples=["https://merchant.example/hooks/payments"])
    event_types: list[Subscription] = Field(min_length=1, max_length=len(EVENT_TYPES) + 1,
                                            examples=[["invoice.completed",
                                                       "payment.succeeded"]])
    description: str = Field(default="", max_length=2000)


class EndpointUpdate(StrictBody):
    url: str | None = Field(default=None, max_length=2000)
    event_types: list[Subscription] | None = Field(default=None, min_length=1,
                                                   max_length=len(EVENT_TYPES) + 1)
    description: str | None = Field(default=None, max_length=2000)
    enabled: bool | None = None


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    created_at: Timestamp
    updated_at: Timestamp


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="`whsec_…`: shown only here and on rotation")


class SecretOut(BaseModel):
    secret: str


class RedeliverIn(StrictBody):
    endpoint_id: uuid.UUID | None = None


class RedeliverOut(BaseModel):
    event_id: str
    endpoint_ids: list[uuid.UUID]
