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


# Each balance is the sum of its user's entries in that currency.
CREDIT_BALANCE_SQL = """
SELECT COALESCE(b.user_id, e.user_id), COALESCE(b.currency, e.currency),
       COALESCE(b.balance, 0), COALESCE(e.total, 0)
FROM credit_balances b
FULL JOIN (SELECT user_id, currency, SUM(amount) AS total FROM credit_entries
           GROUP BY user_id, currency) e
  ON e.user_id = b.user_id AND e.currency = b.currency
WHERE COALESCE(b.balance, 0) <> COALESCE(e.total, 0)
"""

# What an invoice was paid from credit is its credit payments, and what it took from the
# credit ledger; what it returned is the refund entries.
CREDIT_INVOICE_SQL = """
SELECT i.id, i.amount_paid_from_credit, COALESCE(t.paid, 0), COALESCE(c.applied, 0),
       i.amount_returned_to_credit, COALESCE(c.returned, 0)
FROM invoices i
LEFT JOIN (SELECT invoice_id, SUM(amount) AS paid FROM invoice_transactions
           WHERE source = 'credit' AND kind = 'payment' GROUP BY invoice_id) t
  ON t.invoice_id = i.id
LEFT JOIN (SELECT invoice_id, -SUM(amount) FILTER (WHERE source = 'applied') AS applied,
                  SUM(amount) FILTER (WHERE source = 'refund') AS returned
           FROM credit_entries WHERE invoice_id IS NOT NULL GROUP BY invoice_id) c
  ON c.invoice_id = i.id
WHERE i.amount_paid_from_credit <> COALESCE(t.paid, 0)
   OR i.amount_paid_from_credit <> COALESCE(c.applied, 0)
   OR i.amount_returned_to_credit <> COALESCE(c.returned, 0)
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
    for user_id, currency, balance, total in database.execute_sql(
            CREDIT_BALANCE_SQL).fetchall():
        found.append(Mismatch(f"user {user_id}", f"credit balance {balance} {currency} but "
                              f"its entries sum to {total} minor units"))
    for inv_id, from_credit, paid, applied, returned, entries in database.execute_sql(
            CREDIT_INVOICE_SQL).fetchall():
        found.append(Mismatch(str(inv_id), (
            f"paid from credit {from_credit} (credit payments {paid}, applied entries "
            f"{applied}); returned to credit {returned} (refund entries {entries})")))
    return checked, found
