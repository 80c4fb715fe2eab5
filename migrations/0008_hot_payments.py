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

Applied while the app may be serving, so each step is its own short transaction and safe to
run again if a previous run stopped half way: the column (added without a rewrite), the new
index, then the old one dropped. Reads are held up only for the moment each ALTER and the
DROP take their lock; writes wait while the index is built (one scan of the table). Not
`CONCURRENTLY`: that build waits for every older
snapshot, including one held by another starting process waiting for the migration lock
(app/db/migrations.py), which waits for it in turn. A fill factor of 90 leaves room on each
page for the new row version (new pages only; existing ones get their room as rows move
off them).
"""

atomic = False  # each statement commits on its own (see above)

STATEMENTS = [
    # Give up rather than hold every request up behind a lock a long transaction holds:
    # the next start tries again.
    "SET lock_timeout = '5s'",
    "ALTER TABLE invoices ADD COLUMN IF NOT EXISTS overdue_checked_for date",
    """CREATE INDEX IF NOT EXISTS invoices_overdue_due_idx ON invoices (due_date)
       WHERE overdue_notified_for IS DISTINCT FROM due_date
         AND overdue_checked_for IS DISTINCT FROM due_date
         AND status NOT IN ('void', 'completed')""",
    "DROP INDEX IF EXISTS invoices_overdue_idx",
    "ALTER TABLE invoices SET (fillfactor = 90)",
    "RESET lock_timeout",
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
