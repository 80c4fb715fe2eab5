"""Events: written with the change that caused them, listed, and sent again on request."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from app.db.models import utcnow
from app.errors import NotFound
from app.events import queries
from app.events.render import event_json, event_out
from app.events.schemas import DeliveryAttemptOut, DeliveryAttempts, EventOut, RedeliverOut
from app.pagination import decode_cursor, page_json


class EventNotFound(NotFound, code="event_not_found"): ...
class EndpointNotFound(NotFound, code="endpoint_not_found"): ...


async def get_event(*, event_id: str) -> EventOut:
    row = await queries.one(event_id)
    if row is None:
        raise EventNotFound(f"no event with id {event_id}")
    return event_out(row)


async def list_events(*, limit: int, cursor: str | None, type: str | None = None,
                      invoice_id: uuid.UUID | None = None,
                      created_after: datetime | None = None,
                      created_before: datetime | None = None) -> dict[str, Any]:
    """Newest first, as plain values (app.pagination.page_json)."""
    conditions = {"e.type =": type, "e.invoice_id =": invoice_id,
                  "e.created_at >": created_after, "e.created_at <": created_before}
    rows = await queries.page(limit, decode_cursor(cursor, id_of=int) if cursor else None,
                              {k: v for k, v in conditions.items() if v is not None})
    return page_json(rows, limit, event_json, id_key="seq")


async def event_deliveries(*, event_id: str) -> DeliveryAttempts:
    row = await queries.one(event_id)
    if row is None:
        raise EventNotFound(f"no event with id {event_id}")
    return DeliveryAttempts(data=[DeliveryAttemptOut.model_construct(
        delivery_id=a["delivery_id"], endpoint_id=a["endpoint_id"],
        delivery_status=a["status"], attempt=a["attempt"], status_code=a["status_code"],
        error=a["error"], duration_ms=a["duration_ms"], created_at=a["created_at"],
        next_attempt_at=a["next_attempt_at"] if a["attempt"] is not None
        else a["delivery_next_attempt_at"])
        for a in await queries.attempts(row["seq"])])


async def redeliver(*, event_id: str, endpoint_id: uuid.UUID | None) -> RedeliverOut:
    row = await queries.one(event_id)
    if row is None:
        raise EventNotFound(f"no event with id {event_id}")
    sent_to = await queries.redeliver(row["seq"], endpoint_id, utcnow())
    if endpoint_id is not None and not sent_to:
        raise EndpointNotFound(f"no webhook endpoint with id {endpoint_id}",
                               field="endpoint_id")
    return RedeliverOut(event_id=event_id, endpoint_ids=sent_to)
