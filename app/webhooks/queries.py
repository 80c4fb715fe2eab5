"""The webhooks domain's SQL."""

from __future__ import annotations

from app.http.replay import claim_then
from app.invoices.queries import select_invoice

# A payment event's first round trip: its id claimed and, once it is ours, the invoice
# locked and read (with its parties, for the answer), as crediting the excess needs it.
# The lock is taken on the invoice alone, and the parties joined to the row it returns:
# with the join under FOR UPDATE, an invoice whose payer changed while the event waited
# for its lock would fail the join's re-check and look missing (a stored 404). A party not
# yet visible to the statement leaves its names NULL: the answer then reads the invoice.
CLAIM_LOCKING_INVOICE = claim_then(select_invoice(
    "(SELECT * FROM invoices WHERE id = :invoice_id FOR UPDATE) i", join="LEFT JOIN"))
