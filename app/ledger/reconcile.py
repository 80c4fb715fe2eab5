"""Check every invoice against its ledger (used by `python -m app reconcile`)."""

from __future__ import annotations

from dataclasses import dataclass

import peewee

MISMATCH_SQL = """
SELECT i.id, i.amount, i.amount_recovered, i.amount_refunded,
       COALESCE(t.paid, 0) AS paid, COALESCE(t.refunded, 0) AS refunded, i.currency
FROM invoices i
LEFT JOIN (
    SELECT invoice_id,
           SUM(amount) FILTER (WHERE kind = 'payment' AND status = 'succeeded') AS paid,
           SUM(amount) FILTER (WHERE kind = 'refund' AND status = 'succeeded') AS refunded
    FROM invoice_transactions
    GROUP BY invoice_id
) t ON t.invoice_id = i.id
WHERE i.amount_recovered <> COALESCE(t.paid, 0)
   OR i.amount_refunded <> COALESCE(t.refunded, 0)
   OR NOT (0 <= i.amount_refunded AND i.amount_refunded <= i.amount_recovered
           AND i.amount_recovered <= i.amount)
ORDER BY i.created_at
"""

CURRENCY_SQL = """
SELECT t.invoice_id, count(*) FROM invoice_transactions t JOIN invoices i ON i.id = t.invoice_id
WHERE t.status = 'succeeded' AND t.currency <> i.currency GROUP BY t.invoice_id
"""


@dataclass(frozen=True)
class Mismatch:
    invoice_id: str
    problem: str


def find_mismatches(database: peewee.Database) -> tuple[int, list[Mismatch]]:
    """(invoices checked, mismatches)."""
    checked = database.execute_sql("SELECT count(*) FROM invoices").fetchone()[0]
    found = []
    for inv_id, amount, recovered, refunded, paid, refunded_rows, currency in \
            database.execute_sql(MISMATCH_SQL).fetchall():
        found.append(Mismatch(str(inv_id), (
            f"amount={amount} recovered={recovered} (ledger {paid}) "
            f"refunded={refunded} (ledger {refunded_rows}) minor units of {currency}")))
    for inv_id, count in database.execute_sql(CURRENCY_SQL).fetchall():
        found.append(Mismatch(str(inv_id), f"{count} transaction(s) in another currency"))
    return checked, found
