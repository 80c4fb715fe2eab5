"""Writing events: what other domains call, in their own unit of work, with the change.
(The ledger's payments write theirs inside their one statement: app/ledger/queries.py.)"""

from __future__ import annotations

from typing import Any

from app.db.models import utcnow
from app.events import queries


async def record_invoice_event(*, type: str, invoice: Any,
                               previous: dict[str, Any] | None = None) -> str:
    """In the caller's transaction, with the change: an invoice event whose object is
    `invoice` (an InvoiceOut) as the API shows it now."""
    return await queries.record(type=type, invoice_id=invoice.id, created_at=utcnow(),
                                data={"object": invoice.model_dump(mode="json")},
                                previous=previous)
