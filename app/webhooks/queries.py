"""The webhooks domain's SQL."""

from __future__ import annotations

from app.http.replay import ANSWER_OR_STORED, NOT_STORED, STORED, answer_cte, claim_then
from app.invoices.queries import select_invoice
from app.ledger.queries import INVOICE_SNAPSHOT, record_statement

# A payment event's first round trip: its id claimed and, once it is ours, the invoice
# locked and read (with its parties, for the answer), as crediting the excess needs it.
# The lock is taken on the invoice alone, and the parties joined to the row it returns:
# with the join under FOR UPDATE, an invoice whose payer changed while the event waited
# for its lock would fail the join's re-check and look missing (a stored 404). A party not
# yet visible to the statement leaves its names NULL: the answer then reads the invoice.
CLAIM_LOCKING_INVOICE = claim_then(select_invoice(
    "(SELECT * FROM invoices WHERE id = :invoice_id FOR UPDATE) i", join="LEFT JOIN"))

# A payment event in one statement, in autocommit (app/http/replay.py, at_once()): the
# answer stored for its id, or the ledger statement's payment with the answer stored by it.
# The payment runs only as it is (not void, no more than is due, the amount fitting the
# currency) and only while both parties are visible to the statement, so the answer's
# invoice always has them; anything else moves nothing here and is left to the path
# above (crediting an excess, refusals). The answer is stored as the rows it is made of,
# with the day its `overdue` was judged on: app/webhooks/service.py renders it.
PAY_AT_ONCE = record_statement(
    first=f"{STORED}, ",
    only_if=f"""{NOT_STORED}
      AND EXISTS (SELECT FROM users p WHERE p.id = i.payer_id)
      AND EXISTS (SELECT FROM users r WHERE r.id = i.receiver_id)""",
    then=", " + answer_cte(f"""jsonb_build_object('raw', jsonb_build_object(
        'v', 1, 'today', :today::date, 'transaction', to_jsonb(recorded),
        'invoice', {INVOICE_SNAPSHOT}))::text""", "recorded, moved"),
    answer=ANSWER_OR_STORED)
