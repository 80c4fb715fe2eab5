"""Payments that leave an invoice's status as it was update it in place (a HOT update):
no new entry in any of its indexes.

PostgreSQL updates a row without touching its indexes only when no column that an index
reads (as a key, in an expression or in a partial index's predicate) changes, and the new
row version fits on the same page. The overdue index's predicate read `amount_recovered`
and `amount`, so every payment wrote a new entry into all six indexes of `invoices`, for
vacuum (or PostgreSQL's bottom-up index deletion) to clear later. Measured: WAL per
payment 8–17% less (docs/PERFORMANCE.md, "HOT payments").

The new overdue index (`invoices_overdue_due_idx`) reads `status` instead, which the status
index reads anyway: an invoice with something still due and not void is neither `void` nor
`completed`. That is a superset: an invoice paid in full and then refunded has nothing due
but is `refunded` or `partially_refunded`. The announcer (app/events/overdue.py) marks such
an invoice once with `overdue_checked_for` (the due date it found nothing due on), which
takes it out of the index; raising its amount clears the mark.

Built without blocking the table (the migration runs while the app serves): the index
CONCURRENTLY, outside a transaction, and each step safe to run again if a previous run
stopped half way. A fill factor of 90 leaves room on each page for the new row version (new
pages only; existing ones get their room as rows move off them).
"""

atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

STATEMENTS = [
    # Fail fast rather than queue every request behind a lock a long transaction holds.
    "SET lock_timeout = '5s'",
    "ALTER TABLE invoices ADD COLUMN IF NOT EXISTS overdue_checked_for date",
    # Left invalid by a build that was interrupted: build it again.
    "DROP INDEX CONCURRENTLY IF EXISTS invoices_overdue_due_idx",
    """CREATE INDEX CONCURRENTLY invoices_overdue_due_idx ON invoices (due_date)
       WHERE overdue_notified_for IS DISTINCT FROM due_date
         AND overdue_checked_for IS DISTINCT FROM due_date
         AND status NOT IN ('void', 'completed')""",
    "DROP INDEX CONCURRENTLY IF EXISTS invoices_overdue_idx",
    "ALTER TABLE invoices SET (fillfactor = 90)",
    "RESET lock_timeout",
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
