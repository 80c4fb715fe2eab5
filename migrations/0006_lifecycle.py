"""The invoice lifecycle: void and uncollectible marks, and the status that follows them.

`voided_at` is final (nothing moves on a void invoice); `uncollectible_at` is set and
cleared by an admin and shows only while the invoice is not paid in full. The generated
`status` column is made again with the two new rules, first rule that matches: void;
refunded / partially_refunded; completed; uncollectible; partially_paid; payment_failed;
pending (docs/API.md). `overdue_notified_for` is the due date for which `invoice.overdue`
was emitted, so the event goes out once per invoice (and again only if the due date moves).
"""

STATEMENTS = [
    """ALTER TABLE invoices ADD COLUMN voided_at timestamptz,
                           ADD COLUMN uncollectible_at timestamptz,
                           ADD COLUMN overdue_notified_for date""",
    "ALTER TABLE invoices DROP COLUMN status",
    """
    ALTER TABLE invoices ADD COLUMN status text GENERATED ALWAYS AS (
        CASE
            WHEN voided_at IS NOT NULL THEN 'void'
            WHEN amount_refunded > 0 THEN
                CASE WHEN amount_refunded = amount_recovered
                     THEN 'refunded' ELSE 'partially_refunded' END
            WHEN amount_recovered = amount THEN 'completed'
            WHEN uncollectible_at IS NOT NULL THEN 'uncollectible'
            WHEN amount_recovered > 0 THEN 'partially_paid'
            WHEN last_attempt_failed THEN 'payment_failed'
            ELSE 'pending'
        END
    ) STORED
    """,
    "CREATE INDEX invoices_status_idx ON invoices (status, created_at DESC, id DESC)",
    # A void invoice moves no money: the database refuses it too.
    """ALTER TABLE invoices ADD CONSTRAINT invoices_void_moves_nothing
       CHECK (voided_at IS NULL OR amount_recovered = 0)""",
    # Invoices already overdue before this release are not announced all at once on the
    # day it is deployed: `invoice.overdue` is for the day an invoice becomes overdue.
    """UPDATE invoices SET overdue_notified_for = due_date
       WHERE due_date < (now() AT TIME ZONE 'UTC')::date""",
    # What the overdue scheduler looks for: unpaid, not void, with a due date not yet
    # announced (a paid or void invoice leaves the index).
    """CREATE INDEX invoices_overdue_idx ON invoices (due_date)
       WHERE overdue_notified_for IS DISTINCT FROM due_date AND voided_at IS NULL
         AND amount_recovered < amount""",
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
