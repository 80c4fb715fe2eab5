"""The webhooks domain's SQL."""

from __future__ import annotations

from app.http.replay import claim_then
from app.invoices.queries import SELECT_INVOICE

# A payment event's first round trip: its id claimed and, once it is ours, the invoice
# read (with its parties, for the answer) and locked, as crediting the excess needs it.
CLAIM_LOCKING_INVOICE = claim_then(SELECT_INVOICE + " WHERE i.id = :invoice_id FOR UPDATE OF i")
